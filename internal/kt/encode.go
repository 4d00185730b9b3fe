package kt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

var (
	// ErrLabel reports a label that is empty, longer than MaxLabelSize or
	// not valid UTF-8.
	ErrLabel = errors.New("kt: invalid label")
	// ErrValueTooLarge reports a value longer than MaxValueSize.
	ErrValueTooLarge = errors.New("kt: value too large")
)

// CheckLabel returns ErrLabel unless label is 1..MaxLabelSize bytes of
// valid UTF-8.
func CheckLabel(label string) error {
	if len(label) == 0 || len(label) > MaxLabelSize || !utf8.ValidString(label) {
		return fmt.Errorf("%w: %d bytes", ErrLabel, len(label))
	}
	return nil
}

// VRFInput is the VRF input for version of label: the TLS encoding of
// VrfInput (draft-ietf-keytrans-protocol §10.7), u8 length || label ||
// u32 version. The label must pass CheckLabel.
func VRFInput(label string, version uint32) []byte {
	b := make([]byte, 0, 1+len(label)+4)
	b = append(b, byte(len(label)))
	b = append(b, label...)
	return binary.BigEndian.AppendUint32(b, version)
}

// IndexFromVRF is the prefix-tree index of a VRF output: its first 32 bytes
// (§15.1 truncates ECVRF-EDWARDS25519-SHA512-TAI's 64-byte output).
func IndexFromVRF(beta [64]byte) [IndexSize]byte {
	return [IndexSize]byte(beta[:IndexSize])
}

// Commit is the commitment to value as version of label under opening:
//
//	MAC(Kc, "Parley-v1 KT Commitment", opening, label, u32 version, value)
//
// with primitives.MAC's framing (label || 0x00, then each part with a u32
// length). It replaces §10.6's HMAC(Kc, CommitmentValue) only in that
// framing: the key, the inputs and their order are the draft's. Hiding rests
// on the 128-bit random opening, binding on HMAC-SHA256's collision
// resistance under a known key.
func Commit(opening [OpeningSize]byte, label string, version uint32, value []byte) [HashSize]byte {
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], version)
	return primitives.MAC(commitmentKey, primitives.LabelKTCommitment, opening[:], []byte(label), v[:], value)
}

// NewOpening returns a fresh random commitment opening.
func NewOpening() [OpeningSize]byte {
	var o [OpeningSize]byte
	primitives.Random(o[:])
	return o
}

// LogEntry is one leaf of the log: the state of the prefix tree at the end
// of an epoch.
type LogEntry struct {
	// Epoch is the entry's position in the log, from 0.
	Epoch uint64
	// Timestamp is when the epoch was published, in milliseconds since the
	// Unix epoch (§10.8).
	Timestamp uint64
	// PrefixRoot is the prefix tree's root hash after the epoch's
	// insertions.
	PrefixRoot [HashSize]byte
}

// LogEntrySize is the size of an encoded LogEntry.
const LogEntrySize = 1 + 8 + 8 + HashSize

// Marshal encodes the entry: version (1) || u64 epoch || u64 timestamp ||
// prefix root (32). These bytes are the RFC 6962 leaf data of the log.
func (e *LogEntry) Marshal() []byte {
	b := make([]byte, 0, LogEntrySize)
	b = append(b, wire.Version)
	b = binary.BigEndian.AppendUint64(b, e.Epoch)
	b = binary.BigEndian.AppendUint64(b, e.Timestamp)
	return append(b, e.PrefixRoot[:]...)
}

// UnmarshalLogEntry decodes a LogEntry.
func UnmarshalLogEntry(b []byte) (*LogEntry, error) {
	const typ = "kt log entry"
	if len(b) == 0 {
		return nil, wire.Malformed(typ, "empty")
	}
	if err := wire.CheckVersion(typ, b[0]); err != nil {
		return nil, err
	}
	if len(b) != LogEntrySize {
		return nil, wire.Malformed(typ, fmt.Sprintf("%d bytes, want %d", len(b), LogEntrySize))
	}
	e := &LogEntry{
		Epoch:     binary.BigEndian.Uint64(b[1:]),
		Timestamp: binary.BigEndian.Uint64(b[9:]),
	}
	copy(e.PrefixRoot[:], b[17:])
	return e, nil
}

// decoder helpers shared by the proof encodings.

type reader struct {
	s   cryptobyte.String
	typ string
	err error
}

func newReader(typ string, b []byte) *reader { return &reader{s: cryptobyte.String(b), typ: typ} }

func (r *reader) fail(reason string) {
	if r.err == nil {
		r.err = wire.Malformed(r.typ, reason)
	}
}

func (r *reader) version() {
	var v uint8
	if !r.s.ReadUint8(&v) {
		r.fail("empty")
		return
	}
	if err := wire.CheckVersion(r.typ, v); err != nil && r.err == nil {
		r.err = err
	}
}

func (r *reader) u8(what string) uint8 {
	var v uint8
	if r.err == nil && !r.s.ReadUint8(&v) {
		r.fail("truncated " + what)
	}
	return v
}

func (r *reader) u16(what string) uint16 {
	var v uint16
	if r.err == nil && !r.s.ReadUint16(&v) {
		r.fail("truncated " + what)
	}
	return v
}

func (r *reader) u32(what string) uint32 {
	var v uint32
	if r.err == nil && !r.s.ReadUint32(&v) {
		r.fail("truncated " + what)
	}
	return v
}

func (r *reader) u64(what string) uint64 {
	var v uint64
	if r.err == nil && !r.s.ReadUint64(&v) {
		r.fail("truncated " + what)
	}
	return v
}

func (r *reader) bytes(dst []byte, what string) {
	if r.err == nil && !r.s.CopyBytes(dst) {
		r.fail("truncated " + what)
	}
}

// hashes reads n hashes after checking that they are there, so a lying
// count cannot make it allocate more than the input holds.
func (r *reader) hashes(n int, what string) [][HashSize]byte {
	if r.err != nil {
		return nil
	}
	if len(r.s) < n*HashSize {
		r.fail("truncated " + what)
		return nil
	}
	out := make([][HashSize]byte, n)
	for i := range out {
		r.s.CopyBytes(out[i][:])
	}
	return out
}

// vec32 reads a u32-length-prefixed byte string of at most max bytes.
func (r *reader) vec32(max int, what string) []byte {
	n := r.u32(what + " length")
	if r.err != nil {
		return nil
	}
	if int64(n) > int64(max) {
		r.fail(what + " too long")
		return nil
	}
	var v []byte
	if !r.s.ReadBytes(&v, int(n)) {
		r.fail("truncated " + what)
	}
	return v
}

func (r *reader) done() error {
	if r.err == nil && !r.s.Empty() {
		r.fail("trailing bytes")
	}
	return r.err
}
