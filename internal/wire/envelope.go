package wire

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// MessageType says what an envelope's body is.
type MessageType byte

const (
	// TypePrekey is a handshake message that starts a session and carries
	// its first ratchet message (docs/protocol.md §4.4).
	TypePrekey MessageType = 1
	// TypeRatchet is a ratchet message in an established session (§5.5).
	TypeRatchet MessageType = 2
)

func (t MessageType) String() string {
	switch t {
	case TypePrekey:
		return "prekey"
	case TypeRatchet:
		return "ratchet"
	default:
		return fmt.Sprintf("MessageType(%d)", byte(t))
	}
}

// MaxEnvelopeBody bounds an envelope body: the largest padded plaintext plus
// room for the largest header (two ML-KEM-768 fields) and handshake fields.
const MaxEnvelopeBody = MaxPlaintextSize + 64<<10

// Envelope is the unit a device sends to one other device (§7.2):
//
//	version (1) || type (1) || uint24 length || body
type Envelope struct {
	Type MessageType
	Body []byte
}

// Marshal encodes the envelope.
func (e *Envelope) Marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(Version)
	b.AddUint8(byte(e.Type))
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Body) })
	return b.BytesOrPanic()
}

// UnmarshalEnvelope decodes an envelope. The body aliases data.
func UnmarshalEnvelope(data []byte) (*Envelope, error) {
	const typ = "envelope"
	s := cryptobyte.String(data)
	var v, t uint8
	var body cryptobyte.String
	if !s.ReadUint8(&v) {
		return nil, Malformed(typ, "truncated")
	}
	if err := CheckVersion(typ, v); err != nil {
		return nil, err
	}
	if !s.ReadUint8(&t) || !s.ReadUint24LengthPrefixed(&body) {
		return nil, Malformed(typ, "truncated")
	}
	if !s.Empty() {
		return nil, Malformed(typ, "trailing bytes")
	}
	switch MessageType(t) {
	case TypePrekey, TypeRatchet:
	default:
		return nil, Malformed(typ, fmt.Sprintf("unknown type %d", t))
	}
	if len(body) > MaxEnvelopeBody {
		return nil, Malformed(typ, "body larger than MaxEnvelopeBody")
	}
	return &Envelope{Type: MessageType(t), Body: body}, nil
}
