package provision

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// The frame payloads (§9.4). They have no version byte of their own: they
// only travel sealed inside a versioned frame whose type says which one it
// is. Every check below is shared by the encoder (a caller error) and the
// decoder (wire.ErrMalformed).

// Account is the first frame's payload: what makes the new device a member
// of the account.
type Account struct {
	Username string                     // the account name, as in the device list
	Server   string                     // the server URL the account lives on
	Key      *identity.AccountKey       // the account key (its 64-byte seed travels)
	List     *identity.SignedDeviceList // the signed device list that adds the new device
	Contacts uint32                     // how many contacts the transfer carries
	Messages uint32                     // how many history messages the transfer carries
	Settings []Setting                  // sorted by name, names distinct
}

// Setting is one client setting. Its meaning is the SDK's.
type Setting struct {
	Name  string // 1..MaxSettingNameSize bytes of UTF-8
	Value []byte // 0..MaxSettingValueSize bytes
}

// Contact is one contact in a contacts frame.
type Contact struct {
	Username string
	List     *identity.SignedDeviceList // the last list E verified for the contact
	Verified bool                       // the person compared safety numbers
	Added    time.Time                  // millisecond precision
}

// HistoryMessage is one message in a history frame, in either direction.
type HistoryMessage struct {
	ID           [16]byte
	Conversation string // the other account of the conversation
	Sender       string
	SenderDevice identity.DeviceID
	Outgoing     bool
	Sent         time.Time // the sender's clock, millisecond precision
	Received     time.Time // E's clock, millisecond precision
	State        uint8     // the client store's delivery state; opaque here
	Body         []byte    // at most wire.MaxPlaintextSize bytes
}

// End is the last frame's payload: the counts of what the transfer sent,
// which the receiver checks against what it opened.
type End struct {
	Contacts uint32 // contacts in all contacts frames
	Messages uint32 // messages in all history frames
	Frames   uint32 // frames before the end frame
}

// sizes of the fixed parts of the encodings.
const (
	// id, conversation length, sender length, sender device, outgoing,
	// sent, received, state, body length.
	historyFixed  = 16 + 1 + 1 + identity.DeviceIDSize + 1 + 8 + 8 + 1 + 3
	contactFixed  = 1 + 3 + 1 + 8
	batchCountLen = 2
	endSize       = 12
)

func checkName(what, s string, maxLen int) string {
	switch {
	case s == "":
		return what + " is empty"
	case len(s) > maxLen:
		return what + " is too long"
	case !utf8.ValidString(s):
		return what + " is not UTF-8"
	}
	return ""
}

// checkMillis checks that t encodes as a u64 of Unix milliseconds.
func checkMillis(what string, t time.Time) string {
	if t.UnixMilli() < 0 {
		return what + " is before 1970"
	}
	return ""
}

func readMillis(s *cryptobyte.String, t *time.Time) bool {
	var v uint64
	if !s.ReadUint64(&v) || v > math.MaxInt64 {
		return false
	}
	*t = time.UnixMilli(int64(v))
	return true
}

func readBool(s *cryptobyte.String, b *bool) (ok, valid bool) {
	var v uint8
	if !s.ReadUint8(&v) {
		return false, false
	}
	*b = v == 1
	return true, v <= 1
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// --- account ---

const accountType = "provisioning account payload"

func (a *Account) check() string {
	if r := checkName("username", a.Username, identity.MaxAccountNameSize); r != "" {
		return r
	}
	if r := checkName("server URL", a.Server, MaxServerURLSize); r != "" {
		return r
	}
	if a.Key == nil || a.List == nil {
		return "account key or device list missing"
	}
	if a.Contacts > MaxContacts {
		return "too many contacts"
	}
	if a.Messages > MaxHistoryMessages {
		return "too many history messages"
	}
	if len(a.Settings) > MaxSettings {
		return "too many settings"
	}
	for i, s := range a.Settings {
		if r := checkName("setting name", s.Name, MaxSettingNameSize); r != "" {
			return r
		}
		if len(s.Value) > MaxSettingValueSize {
			return "setting value is too long"
		}
		if i > 0 && strings.Compare(a.Settings[i-1].Name, s.Name) >= 0 {
			return "settings are not sorted by distinct names"
		}
	}
	return ""
}

func (a *Account) marshal() ([]byte, error) {
	if r := a.check(); r != "" {
		return nil, errors.New("provision: cannot send account: " + r)
	}
	var b cryptobyte.Builder
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.Username)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.Server)) })
	b.AddBytes(a.Key.Seed())
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(a.List.Marshal()) })
	b.AddUint32(a.Contacts)
	b.AddUint32(a.Messages)
	b.AddUint8(uint8(len(a.Settings)))
	for _, s := range a.Settings {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s.Name)) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.Value) })
	}
	return b.Bytes()
}

func parseAccount(data []byte) (*Account, error) {
	s := cryptobyte.String(data)
	var user, server, seed []byte
	var list cryptobyte.String
	var a Account
	var n uint8
	if !s.ReadUint8LengthPrefixed((*cryptobyte.String)(&user)) ||
		!s.ReadUint16LengthPrefixed((*cryptobyte.String)(&server)) ||
		!s.ReadBytes(&seed, primitives.SigningSeedSize) ||
		!s.ReadUint24LengthPrefixed(&list) ||
		!s.ReadUint32(&a.Contacts) || !s.ReadUint32(&a.Messages) || !s.ReadUint8(&n) {
		return nil, wire.Malformed(accountType, "truncated")
	}
	for range n {
		var name, value []byte
		if !s.ReadUint8LengthPrefixed((*cryptobyte.String)(&name)) ||
			!s.ReadUint16LengthPrefixed((*cryptobyte.String)(&value)) {
			return nil, wire.Malformed(accountType, "truncated")
		}
		a.Settings = append(a.Settings, Setting{Name: string(name), Value: bytes.Clone(value)})
	}
	if !s.Empty() {
		return nil, wire.Malformed(accountType, "trailing bytes")
	}
	a.Username, a.Server = string(user), string(server)
	k, err := identity.NewAccountKey(seed)
	if err != nil {
		return nil, wire.Malformed(accountType, "invalid account key seed")
	}
	a.Key = k
	if a.List, err = identity.ParseSignedDeviceList(list); err != nil {
		return nil, err
	}
	if r := a.check(); r != "" {
		return nil, wire.Malformed(accountType, r)
	}
	return &a, nil
}

// --- contacts ---

const contactsType = "provisioning contacts payload"

func (c *Contact) check() string {
	if r := checkName("contact username", c.Username, identity.MaxAccountNameSize); r != "" {
		return r
	}
	if c.List == nil {
		return "contact device list missing"
	}
	return checkMillis("contact added time", c.Added)
}

func marshalContacts(cs []Contact) ([]byte, error) {
	if len(cs) == 0 {
		return nil, errors.New("provision: cannot send an empty contacts batch")
	}
	if len(cs) > MaxContactsBatch {
		return nil, &LimitError{What: "contacts batch", Limit: MaxContactsBatch}
	}
	var b cryptobyte.Builder
	b.AddUint16(uint16(len(cs)))
	for i := range cs {
		c := &cs[i]
		if r := c.check(); r != "" {
			return nil, errors.New("provision: cannot send contact: " + r)
		}
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Username)) })
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.List.Marshal()) })
		b.AddUint8(boolByte(c.Verified))
		b.AddUint64(uint64(c.Added.UnixMilli()))
	}
	out, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	if len(out) > MaxPayloadSize {
		return nil, &LimitError{What: "contacts batch size in bytes", Limit: MaxPayloadSize}
	}
	return out, nil
}

func parseContacts(data []byte) ([]Contact, error) {
	if len(data) > MaxPayloadSize {
		return nil, wire.Malformed(contactsType, "too large")
	}
	s := cryptobyte.String(data)
	var n uint16
	if !s.ReadUint16(&n) {
		return nil, wire.Malformed(contactsType, "truncated")
	}
	if n == 0 || n > MaxContactsBatch {
		return nil, wire.Malformed(contactsType, "bad contact count")
	}
	cs := make([]Contact, 0, n)
	for range n {
		var c Contact
		var user []byte
		var list cryptobyte.String
		if !s.ReadUint8LengthPrefixed((*cryptobyte.String)(&user)) || !s.ReadUint24LengthPrefixed(&list) {
			return nil, wire.Malformed(contactsType, "truncated")
		}
		ok, valid := readBool(&s, &c.Verified)
		if !ok || !readMillis(&s, &c.Added) {
			return nil, wire.Malformed(contactsType, "truncated or time out of range")
		}
		if !valid {
			return nil, wire.Malformed(contactsType, "verified flag is not 0 or 1")
		}
		c.Username = string(user)
		l, err := identity.ParseSignedDeviceList(list)
		if err != nil {
			return nil, err
		}
		c.List = l
		if r := c.check(); r != "" {
			return nil, wire.Malformed(contactsType, r)
		}
		cs = append(cs, c)
	}
	if !s.Empty() {
		return nil, wire.Malformed(contactsType, "trailing bytes")
	}
	return cs, nil
}

// FitContacts returns how many of the leading contacts of cs fit one
// contacts frame (at least one if cs is not empty), so that a sender can
// batch: for len(cs) > 0 { n := FitContacts(cs); s.Contacts(cs[:n]); cs = cs[n:] }.
func FitContacts(cs []Contact) int {
	size := batchCountLen
	for i := range cs {
		if i == MaxContactsBatch {
			return i
		}
		n := contactFixed + len(cs[i].Username)
		if cs[i].List != nil {
			n += len(cs[i].List.Marshal())
		}
		if size+n > MaxPayloadSize && i > 0 {
			return i
		}
		size += n
	}
	return len(cs)
}

// --- history ---

const historyType = "provisioning history payload"

func (m *HistoryMessage) check() string {
	if r := checkName("conversation", m.Conversation, identity.MaxAccountNameSize); r != "" {
		return r
	}
	if r := checkName("sender", m.Sender, identity.MaxAccountNameSize); r != "" {
		return r
	}
	if r := checkMillis("sent time", m.Sent); r != "" {
		return r
	}
	if r := checkMillis("received time", m.Received); r != "" {
		return r
	}
	if len(m.Body) > maxBody {
		return "body is too long"
	}
	return ""
}

func (m *HistoryMessage) size() int {
	return historyFixed + len(m.Conversation) + len(m.Sender) + len(m.Body)
}

func marshalHistory(ms []HistoryMessage) ([]byte, error) {
	if len(ms) == 0 {
		return nil, errors.New("provision: cannot send an empty history batch")
	}
	if len(ms) > MaxHistoryBatch {
		return nil, &LimitError{What: "history batch", Limit: MaxHistoryBatch}
	}
	size := batchCountLen
	for i := range ms {
		if r := ms[i].check(); r != "" {
			return nil, errors.New("provision: cannot send history message: " + r)
		}
		size += ms[i].size()
	}
	if size > MaxPayloadSize {
		return nil, &LimitError{What: "history batch size in bytes", Limit: MaxPayloadSize}
	}
	b := cryptobyte.NewFixedBuilder(make([]byte, 0, size))
	b.AddUint16(uint16(len(ms)))
	for i := range ms {
		m := &ms[i]
		b.AddBytes(m.ID[:])
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.Conversation)) })
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.Sender)) })
		b.AddBytes(m.SenderDevice[:])
		b.AddUint8(boolByte(m.Outgoing))
		b.AddUint64(uint64(m.Sent.UnixMilli()))
		b.AddUint64(uint64(m.Received.UnixMilli()))
		b.AddUint8(m.State)
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.Body) })
	}
	return b.Bytes()
}

func parseHistory(data []byte) ([]HistoryMessage, error) {
	if len(data) > MaxPayloadSize {
		return nil, wire.Malformed(historyType, "too large")
	}
	s := cryptobyte.String(data)
	var n uint16
	if !s.ReadUint16(&n) {
		return nil, wire.Malformed(historyType, "truncated")
	}
	if n == 0 || n > MaxHistoryBatch {
		return nil, wire.Malformed(historyType, "bad message count")
	}
	ms := make([]HistoryMessage, n)
	for i := range ms {
		m := &ms[i]
		var id, conv, sender, dev, body []byte
		if !s.ReadBytes(&id, 16) ||
			!s.ReadUint8LengthPrefixed((*cryptobyte.String)(&conv)) ||
			!s.ReadUint8LengthPrefixed((*cryptobyte.String)(&sender)) ||
			!s.ReadBytes(&dev, identity.DeviceIDSize) {
			return nil, wire.Malformed(historyType, "truncated")
		}
		ok, valid := readBool(&s, &m.Outgoing)
		if !ok || !readMillis(&s, &m.Sent) || !readMillis(&s, &m.Received) || !s.ReadUint8(&m.State) ||
			!s.ReadUint24LengthPrefixed((*cryptobyte.String)(&body)) {
			return nil, wire.Malformed(historyType, "truncated or time out of range")
		}
		if !valid {
			return nil, wire.Malformed(historyType, "outgoing flag is not 0 or 1")
		}
		m.ID = [16]byte(id)
		m.SenderDevice = identity.DeviceID(dev)
		m.Conversation, m.Sender, m.Body = string(conv), string(sender), bytes.Clone(body)
		if r := m.check(); r != "" {
			return nil, wire.Malformed(historyType, r)
		}
	}
	if !s.Empty() {
		return nil, wire.Malformed(historyType, "trailing bytes")
	}
	return ms, nil
}

// FitHistory returns how many of the leading messages of ms fit one
// history frame (at least one if ms is not empty): at most MaxHistoryBatch
// messages and MaxPayloadSize bytes, whichever comes first.
func FitHistory(ms []HistoryMessage) int {
	size := batchCountLen
	for i := range ms {
		if i == MaxHistoryBatch {
			return i
		}
		n := ms[i].size()
		if size+n > MaxPayloadSize && i > 0 {
			return i
		}
		size += n
	}
	return len(ms)
}

// --- end ---

const endType = "provisioning end payload"

func (e *End) marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint32(e.Contacts)
	b.AddUint32(e.Messages)
	b.AddUint32(e.Frames)
	return b.BytesOrPanic()
}

func parseEnd(data []byte) (*End, error) {
	s := cryptobyte.String(data)
	var e End
	if !s.ReadUint32(&e.Contacts) || !s.ReadUint32(&e.Messages) || !s.ReadUint32(&e.Frames) {
		return nil, wire.Malformed(endType, "truncated")
	}
	if !s.Empty() {
		return nil, wire.Malformed(endType, "trailing bytes")
	}
	return &e, nil
}
