package ratchet

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Message is a decoded ratchet message (docs/protocol.md §5.5):
//
//	version (1) = wire.Version
//	flags (1)                      0x01: PQ key present, 0x02: PQ ciphertext present
//	ratchet public key (32)        the sender's current X25519 ratchet key
//	pn (uint32)                    messages in the sender's previous sending chain
//	n (uint32)                     this message's number in the current chain
//	salt (16)                      fresh per message, mixed into the AEAD key
//	[PQ key (1184)]                if flag 0x01: ML-KEM-768 encapsulation key
//	[key id (16) || PQ ct (1088)]  if flag 0x02: ML-KEM-768 ciphertext and the
//	                               id of the encapsulation key it answers
//	ciphertext (uint24 length)     AES-256-GCM output, at least the 16-byte tag
//
// Everything before the ciphertext is the header; its exact bytes are
// authenticated as associated data. Decoding then encoding gives back the
// same bytes.
type Message struct {
	RatchetKey [primitives.X25519KeySize]byte
	PN, N      uint32
	Salt       [SaltSize]byte

	// PQKey is the sender's pending ML-KEM-768 encapsulation key, or nil.
	PQKey []byte
	// PQKeyID and PQCiphertext answer the receiver's PQ key; PQCiphertext
	// is nil when the header carries no answer.
	PQKeyID      [PQKeyIDSize]byte
	PQCiphertext []byte

	Ciphertext []byte

	// Parsed forms kept so Decrypt never parses the same bytes twice.
	pqKey     *primitives.MLKEM768PublicKey
	headerLen int
}

const messageType = "ratchet message"

// ParseMessage decodes a ratchet message. Byte fields alias b.
func ParseMessage(b []byte) (*Message, error) {
	m := new(Message)
	if err := m.parse(b); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Message) parse(b []byte) error {
	s := cryptobyte.String(b)
	var version, flags uint8
	if !s.ReadUint8(&version) {
		return wire.Malformed(messageType, "truncated")
	}
	if err := wire.CheckVersion(messageType, version); err != nil {
		// Both: callers may branch on "update the client" and on "bad
		// input" alike.
		return fmt.Errorf("%w (%w)", wire.Malformed(messageType, "unsupported version"), err)
	}
	if !s.ReadUint8(&flags) {
		return wire.Malformed(messageType, "truncated")
	}
	if flags&^knownFlags != 0 {
		return wire.Malformed(messageType, "unknown flags")
	}
	var key, salt []byte
	if !s.ReadBytes(&key, primitives.X25519KeySize) ||
		!s.ReadUint32(&m.PN) || !s.ReadUint32(&m.N) ||
		!s.ReadBytes(&salt, SaltSize) {
		return wire.Malformed(messageType, "truncated")
	}
	if !canonicalX25519(key) {
		return wire.Malformed(messageType, "non-canonical X25519 ratchet key")
	}
	copy(m.RatchetKey[:], key)
	copy(m.Salt[:], salt)
	m.PQKey, m.PQCiphertext, m.pqKey = nil, nil, nil
	if flags&flagPQKey != 0 {
		if !s.ReadBytes(&m.PQKey, pqKeySize) {
			return wire.Malformed(messageType, "truncated")
		}
		ek, err := primitives.NewMLKEM768PublicKey(m.PQKey)
		if err != nil {
			return wire.Malformed(messageType, "invalid ML-KEM-768 encapsulation key")
		}
		m.pqKey = ek
	}
	if flags&flagPQCiphertext != 0 {
		var id []byte
		if !s.ReadBytes(&id, PQKeyIDSize) ||
			!s.ReadBytes(&m.PQCiphertext, primitives.MLKEM768CiphertextSize) {
			return wire.Malformed(messageType, "truncated")
		}
		copy(m.PQKeyID[:], id)
	} else {
		m.PQKeyID = [PQKeyIDSize]byte{}
	}
	m.headerLen = len(b) - len(s)
	var ct cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&ct) {
		return wire.Malformed(messageType, "truncated")
	}
	if !s.Empty() {
		return wire.Malformed(messageType, "trailing bytes")
	}
	if len(ct) < primitives.AEADOverhead {
		return wire.Malformed(messageType, "ciphertext shorter than the AEAD tag")
	}
	m.Ciphertext = ct
	return nil
}

// flags returns the flag byte for the fields present.
func (m *Message) flags() byte {
	var f byte
	if m.PQKey != nil {
		f |= flagPQKey
	}
	if m.PQCiphertext != nil {
		f |= flagPQCiphertext
	}
	return f
}

// Marshal encodes m. It panics if a fixed-size field has the wrong length,
// which only a caller that built m by hand can cause.
func (m *Message) Marshal() []byte {
	if (m.PQKey != nil && len(m.PQKey) != pqKeySize) ||
		(m.PQCiphertext != nil && len(m.PQCiphertext) != primitives.MLKEM768CiphertextSize) ||
		len(m.Ciphertext) > maxCiphertext {
		panic("ratchet: internal error: Message field of the wrong size")
	}
	b := make([]byte, 0, headerSize(m.PQKey != nil, m.PQCiphertext != nil)+3+len(m.Ciphertext))
	b = appendHeader(b, m.flags(), &m.RatchetKey, m.PN, m.N, &m.Salt, m.PQKey, &m.PQKeyID, m.PQCiphertext)
	return appendUint24Bytes(b, m.Ciphertext)
}

// headerSize is the encoded header length for the given optional fields.
func headerSize(pqKey, pqCT bool) int {
	n := headerBaseSize
	if pqKey {
		n += pqKeySize
	}
	if pqCT {
		n += pqCTFieldSize
	}
	return n
}

// appendHeader appends the header encoding. It is written out by hand rather
// than with a cryptobyte.Builder because it is on the per-message hot path;
// the decoder above is the strict reference and the round-trip tests hold
// the two together.
func appendHeader(b []byte, flags byte, key *[primitives.X25519KeySize]byte, pn, n uint32, salt *[SaltSize]byte, pqKey []byte, pqID *[PQKeyIDSize]byte, pqCT []byte) []byte {
	b = append(b, wire.Version, flags)
	b = append(b, key[:]...)
	b = appendUint32(b, pn)
	b = appendUint32(b, n)
	b = append(b, salt[:]...)
	if flags&flagPQKey != 0 {
		b = append(b, pqKey...)
	}
	if flags&flagPQCiphertext != 0 {
		b = append(b, pqID[:]...)
		b = append(b, pqCT...)
	}
	return b
}

func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendUint24Bytes(b, v []byte) []byte {
	n := len(v)
	b = append(b, byte(n>>16), byte(n>>8), byte(n))
	return append(b, v...)
}

// canonicalX25519 reports whether b is the canonical encoding of an X25519
// u-coordinate: the top bit clear and the value below 2^255-19. RFC 7748 §5
// asks receivers to accept and mask other encodings; Parley refuses them
// instead, so that every ratchet key has exactly one encoding and the
// decoder stays byte-exact. Low-order points are refused later, by the DH
// itself.
func canonicalX25519(b []byte) bool {
	if b[31]&0x80 != 0 {
		return false
	}
	if b[31] != 0x7f || b[0] < 0xed {
		return true
	}
	for _, c := range b[1:31] {
		if c != 0xff {
			return true
		}
	}
	return false
}
