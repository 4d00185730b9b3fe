package provision

import (
	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// A transfer frame (§9.4):
//
//	version (1) || type (1) || seq (u32) || [enc (1120), account frame only]
//	|| u24 length || sealed payload
//
// The header (everything before the sealed payload) is the AEAD's
// associated data, so the type, the sequence number, enc and the length are
// all authenticated. seq counts frames from 0 and equals the HPKE sequence
// number the payload is sealed under; it is in the clear only so that a
// receiver can tell a frame out of order (ErrOutOfOrder) from a forged one
// (ErrDecrypt) before decrypting.

const frameType = "provisioning frame"

type frame struct {
	typ    FrameType
	seq    uint32
	enc    []byte // account frames only
	header []byte // the associated data
	sealed []byte
}

// header builds the frame header for a sealed payload of sealedLen bytes.
func frameHeader(typ FrameType, seq uint32, enc []byte, sealedLen int) []byte {
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	b.AddUint8(uint8(typ))
	b.AddUint32(seq)
	b.AddBytes(enc)
	b.AddUint24(uint32(sealedLen))
	return b.BytesOrPanic()
}

func parseFrame(data []byte) (*frame, error) {
	if len(data) > MaxFrameSize {
		return nil, wire.Malformed(frameType, "too large")
	}
	s := cryptobyte.String(data)
	var v, t uint8
	if !s.ReadUint8(&v) {
		return nil, wire.Malformed(frameType, "truncated")
	}
	if err := wire.CheckVersion(frameType, v); err != nil {
		return nil, err
	}
	f := &frame{}
	if !s.ReadUint8(&t) || !s.ReadUint32(&f.seq) {
		return nil, wire.Malformed(frameType, "truncated")
	}
	f.typ = FrameType(t)
	if f.typ < FrameAccount || f.typ > FrameEnd {
		return nil, wire.Malformed(frameType, "unknown frame type")
	}
	if f.typ == FrameAccount && !s.ReadBytes(&f.enc, EncapsulatedKeySize) {
		return nil, wire.Malformed(frameType, "truncated")
	}
	if !s.ReadUint24LengthPrefixed((*cryptobyte.String)(&f.sealed)) {
		return nil, wire.Malformed(frameType, "truncated")
	}
	if !s.Empty() {
		return nil, wire.Malformed(frameType, "trailing bytes")
	}
	if len(f.sealed) < primitives.HPKEOverhead || len(f.sealed) > MaxPayloadSize+primitives.HPKEOverhead {
		return nil, wire.Malformed(frameType, "sealed payload size out of range")
	}
	f.header = data[:len(data)-len(f.sealed)]
	return f, nil
}
