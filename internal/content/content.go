// Package content encodes what a message says, inside the end-to-end
// encryption, as specified in docs/protocol.md §7.7. The server never sees
// it: a content is padded and ratchet-encrypted before it leaves the device.
package content

import (
	"fmt"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/wire"
)

// Type says what a content is.
type Type byte

const (
	// TypeText is a text message to the recipient.
	TypeText Type = 1
	// TypeSentCopy is a copy of a text message this account sent, for the
	// sender's other devices, so that every device shows the whole
	// conversation.
	TypeSentCopy Type = 2
	// TypeSessionReset tells the peer device that the sender could not
	// decrypt its messages and started a new session; it carries no text.
	TypeSessionReset Type = 3
	// TypeRecoveryShare hands the recipient one share of the sender's
	// recovery key (docs/backup.md, trusted contacts): Data is a
	// backup.Share encoding. The recipient keeps the newest share per
	// sender and gives it back only to a new device of the sender, after
	// the person confirmed it out of band.
	TypeRecoveryShare Type = 4
	// TypeRecoveryRevoke tells the recipient to delete the sender's
	// recovery share: Data is the 8-byte key ID of the generation revoked,
	// or empty for every share of the sender.
	TypeRecoveryRevoke Type = 5
)

func (t Type) String() string {
	switch t {
	case TypeText:
		return "text"
	case TypeSentCopy:
		return "sent copy"
	case TypeSessionReset:
		return "session reset"
	case TypeRecoveryShare:
		return "recovery share"
	case TypeRecoveryRevoke:
		return "recovery revoke"
	default:
		return fmt.Sprintf("Type(%d)", byte(t))
	}
}

// Limits.
const (
	// MaxTextSize is the largest text in bytes; the padded plaintext must
	// fit wire.MaxPlaintextSize.
	MaxTextSize = 64 << 10
	// MaxNameSize bounds the conversation name of a sent copy.
	MaxNameSize = 64
	// MaxDataSize bounds the binary body of a recovery share or revoke.
	MaxDataSize = 1024
	// revokeKeyIDSize is the size of a revoke's key ID, when it names one.
	revokeKeyIDSize = 8
	// MaxCheckpointSize bounds a piggybacked key-transparency checkpoint
	// (a signed note with its cosignatures); it equals
	// kt.MaxCheckpointSize (docs/transparency.md §11).
	MaxCheckpointSize = 16 << 10
)

// Content is one message's meaning.
type Content struct {
	Type Type
	// ID is the sender-chosen message id, the same in every copy of one
	// message (to every device) and the key of de-duplication.
	ID [16]byte
	// Sent is the sender's clock at sending, to the millisecond.
	Sent time.Time
	// Conversation is, for TypeSentCopy, the account the message went to.
	Conversation string
	// Text is the message text, valid UTF-8, for the text types.
	Text string
	// Data is the binary body of TypeRecoveryShare and TypeRecoveryRevoke
	// (it takes the place of Text in the encoding).
	Data []byte
	// Checkpoint is the sender's latest verified key-transparency
	// checkpoint, the signed note (docs/transparency.md §8, "Forks between
	// people"), piggybacked so that the recipient can check both were
	// shown one log. Optional, for the text types only; nil when absent.
	Checkpoint []byte
}

// binary reports whether t carries Data rather than Text.
func (t Type) binary() bool { return t == TypeRecoveryShare || t == TypeRecoveryRevoke }

// Marshal encodes c:
//
//	version (1) || type (1) || id (16) || sent, unix ms (u64)
//	|| u8 length || conversation || u24 length || text (or data)
//	[|| u16 length || checkpoint]
//
// The checkpoint is present only when non-empty, so encodings without one
// are exactly those of before it existed, and an empty one is refused
// (one encoding per content).
func (c *Content) Marshal() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	b.AddUint8(byte(c.Type))
	b.AddBytes(c.ID[:])
	b.AddUint64(uint64(c.Sent.UnixMilli()))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Conversation)) })
	body := []byte(c.Text)
	if c.Type.binary() {
		body = c.Data
	}
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(body) })
	if c.Checkpoint != nil {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Checkpoint) })
	}
	return b.Bytes()
}

func (c *Content) check() error {
	const typ = "content"
	switch c.Type {
	case TypeText, TypeSessionReset, TypeRecoveryShare, TypeRecoveryRevoke:
		if c.Conversation != "" {
			return wire.Malformed(typ, "conversation set on a "+c.Type.String())
		}
	case TypeSentCopy:
		if c.Conversation == "" {
			return wire.Malformed(typ, "sent copy without a conversation")
		}
	default:
		return wire.Malformed(typ, fmt.Sprintf("unknown type %d", byte(c.Type)))
	}
	if (c.Type == TypeSessionReset || c.Type.binary()) && c.Text != "" {
		return wire.Malformed(typ, c.Type.String()+" with text")
	}
	if !c.Type.binary() && c.Data != nil {
		return wire.Malformed(typ, c.Type.String()+" with data")
	}
	if c.Checkpoint != nil {
		switch {
		case c.Type != TypeText && c.Type != TypeSentCopy:
			return wire.Malformed(typ, c.Type.String()+" with a checkpoint")
		case len(c.Checkpoint) == 0 || len(c.Checkpoint) > MaxCheckpointSize:
			return wire.Malformed(typ, fmt.Sprintf("checkpoint of %d bytes (1..%d)", len(c.Checkpoint), MaxCheckpointSize))
		}
	}
	switch {
	case c.Type == TypeRecoveryShare && (len(c.Data) == 0 || len(c.Data) > MaxDataSize):
		return wire.Malformed(typ, fmt.Sprintf("recovery share of %d bytes (1..%d)", len(c.Data), MaxDataSize))
	case c.Type == TypeRecoveryRevoke && len(c.Data) != 0 && len(c.Data) != revokeKeyIDSize:
		return wire.Malformed(typ, fmt.Sprintf("recovery revoke of %d bytes (0 or %d)", len(c.Data), revokeKeyIDSize))
	}
	if len(c.Text) > MaxTextSize {
		return fmt.Errorf("content: text of %d bytes exceeds %d bytes (MaxTextSize); send a shorter message", len(c.Text), MaxTextSize)
	}
	if len(c.Conversation) > MaxNameSize || !utf8.ValidString(c.Conversation) {
		return wire.Malformed(typ, "bad conversation name")
	}
	if !utf8.ValidString(c.Text) {
		return wire.Malformed(typ, "text is not valid UTF-8")
	}
	if ms := c.Sent.UnixMilli(); ms < 0 {
		return wire.Malformed(typ, "sent time before 1970")
	}
	return nil
}

// Unmarshal decodes a content and checks it as Marshal would.
func Unmarshal(data []byte) (*Content, error) {
	const typ = "content"
	s := cryptobyte.String(data)
	var v, t uint8
	var ms uint64
	var conv, text, cp cryptobyte.String
	c := &Content{}
	if !s.ReadUint8(&v) {
		return nil, wire.Malformed(typ, "truncated")
	}
	if err := wire.CheckVersion(typ, v); err != nil {
		return nil, err
	}
	if !s.ReadUint8(&t) || !s.CopyBytes(c.ID[:]) || !s.ReadUint64(&ms) ||
		!s.ReadUint8LengthPrefixed(&conv) || !s.ReadUint24LengthPrefixed(&text) {
		return nil, wire.Malformed(typ, "truncated")
	}
	if !s.Empty() {
		if !s.ReadUint16LengthPrefixed(&cp) {
			return nil, wire.Malformed(typ, "truncated checkpoint")
		}
		if len(cp) == 0 {
			return nil, wire.Malformed(typ, "empty checkpoint")
		}
		c.Checkpoint = append([]byte(nil), cp...)
	}
	if !s.Empty() {
		return nil, wire.Malformed(typ, "trailing bytes")
	}
	if ms > 1<<62 {
		return nil, wire.Malformed(typ, "sent time out of range")
	}
	c.Type, c.Sent = Type(t), time.UnixMilli(int64(ms)).UTC()
	c.Conversation = string(conv)
	if c.Type.binary() {
		if len(text) > 0 {
			c.Data = append([]byte(nil), text...)
		}
	} else {
		c.Text = string(text)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}
