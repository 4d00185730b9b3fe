package handshake

import (
	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// PrekeyMessage is the body of a wire.TypePrekey envelope: a handshake
// header and the first (or a later, still unconfirmed) ratchet message of
// the session it starts (docs/protocol.md §7.5):
//
//	version (1) || sender device id (16) || recipient device id (16)
//	signed prekey id (4) || flags (1: bit 0 = one-time prekey id follows)
//	[one-time prekey id (4)] || PQ prekey id (4)
//	ephemeral X25519 key (32) || ML-KEM-1024 ciphertext (1568)
//	uint24 length || ratchet message
type PrekeyMessage struct {
	Header  *Header
	Message []byte
}

const (
	prekeyMessageType = "prekey message"
	flagOneTime       = 0x01
)

// Marshal encodes the message.
func (m *PrekeyMessage) Marshal() []byte {
	var b cryptobyte.Builder
	addHeader(&b, m.Header)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.Message) })
	return b.BytesOrPanic()
}

// ParsePrekeyMessage decodes a prekey message. The ratchet message aliases
// data.
func ParsePrekeyMessage(data []byte) (*PrekeyMessage, error) {
	s := cryptobyte.String(data)
	h, err := readHeader(&s, prekeyMessageType)
	if err != nil {
		return nil, err
	}
	var msg cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&msg) {
		return nil, wire.Malformed(prekeyMessageType, "truncated")
	}
	if !s.Empty() {
		return nil, wire.Malformed(prekeyMessageType, "trailing bytes")
	}
	if len(msg) == 0 {
		return nil, wire.Malformed(prekeyMessageType, "empty ratchet message")
	}
	return &PrekeyMessage{Header: h, Message: msg}, nil
}

// Marshal encodes the header alone (the prekey message without its ratchet
// message), for the session store.
func (h *Header) Marshal() []byte {
	var b cryptobyte.Builder
	addHeader(&b, h)
	return b.BytesOrPanic()
}

// ParseHeader decodes a header written by Header.Marshal.
func ParseHeader(data []byte) (*Header, error) {
	const typ = "handshake header"
	s := cryptobyte.String(data)
	h, err := readHeader(&s, typ)
	if err != nil {
		return nil, err
	}
	if !s.Empty() {
		return nil, wire.Malformed(typ, "trailing bytes")
	}
	return h, nil
}

func addHeader(b *cryptobyte.Builder, h *Header) {
	b.AddUint8(wire.Version)
	b.AddBytes(h.Sender[:])
	b.AddBytes(h.Recipient[:])
	b.AddUint32(uint32(h.SignedID))
	if h.OneTimeID != nil {
		b.AddUint8(flagOneTime)
		b.AddUint32(uint32(*h.OneTimeID))
	} else {
		b.AddUint8(0)
	}
	b.AddUint32(uint32(h.PQID))
	b.AddBytes(h.Ephemeral.Bytes())
	b.AddBytes(h.Ciphertext)
}

func readHeader(s *cryptobyte.String, typ string) (*Header, error) {
	bad := func(reason string) (*Header, error) { return nil, wire.Malformed(typ, reason) }
	var v, flags uint8
	if !s.ReadUint8(&v) {
		return bad("truncated")
	}
	if err := wire.CheckVersion(typ, v); err != nil {
		return nil, err
	}
	h := &Header{}
	var signed, pq uint32
	var eph, ct []byte
	if !s.CopyBytes(h.Sender[:]) || !s.CopyBytes(h.Recipient[:]) || !s.ReadUint32(&signed) || !s.ReadUint8(&flags) {
		return bad("truncated")
	}
	if flags&^flagOneTime != 0 {
		return bad("unknown flags")
	}
	if flags&flagOneTime != 0 {
		var ot uint32
		if !s.ReadUint32(&ot) {
			return bad("truncated")
		}
		id := prekey.ID(ot)
		h.OneTimeID = &id
	}
	if !s.ReadUint32(&pq) || !s.ReadBytes(&eph, primitives.X25519KeySize) || !s.ReadBytes(&ct, primitives.MLKEM1024CiphertextSize) {
		return bad("truncated")
	}
	e, err := primitives.NewX25519PublicKey(eph)
	if err != nil {
		return bad("invalid ephemeral key")
	}
	h.SignedID, h.PQID, h.Ephemeral = prekey.ID(signed), prekey.ID(pq), e
	h.Ciphertext = append([]byte(nil), ct...)
	return h, nil
}
