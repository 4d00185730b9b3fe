package backup

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
)

// The plaintext of an archive (docs/backup.md §4), inside the age
// encryption:
//
//	magic "PARLEYBK" (8) || version u16 || record*
//	record = type u8 || length u24 || body (length bytes)
//
// The first record is the header, the last the trailer; contacts, settings
// and messages come between, in any order. All integers are big-endian;
// times are u64 Unix nanoseconds. There is no ratchet or session state in
// any record, by design (docs/backup.md §5).

// Specification constants: changing one changes the format.
const (
	// FormatVersion is the archive format version this package writes and
	// the only one it reads.
	FormatVersion = 1
	// magic starts every archive plaintext.
	magic = "PARLEYBK"
	// prefixSize is magic || version.
	prefixSize = len(magic) + 2
	// recordHeaderSize is type u8 || length u24.
	recordHeaderSize = 4
	// trailerSize is the trailer body: three u32 counts.
	trailerSize = 12
	// messageFixed is a message body without its variable fields: ID,
	// sender device, outgoing, state, sent, received, conversation length,
	// sender length, body length.
	messageFixed = 16 + 16 + 1 + 1 + 8 + 8 + 1 + 1 + 3
	// contactFixed: username length, verified, added, device list length.
	contactFixed = 1 + 1 + 8 + 3
	// headerFixed: username length, server length, account seed, account
	// public key, created, key ID.
	headerFixed = 1 + 2 + primitives.SigningSeedSize + identity.AccountKeySize + 8 + KeyIDSize
)

// RecordKind says which record a Record holds.
type RecordKind uint8

// Record types, as written in the type byte.
const (
	recordHeader  RecordKind = 1
	KindContact   RecordKind = 2
	KindSetting   RecordKind = 3
	KindMessage   RecordKind = 4
	recordTrailer RecordKind = 5
)

func (k RecordKind) String() string {
	switch k {
	case recordHeader:
		return "header"
	case KindContact:
		return "contact"
	case KindSetting:
		return "setting"
	case KindMessage:
		return "message"
	case recordTrailer:
		return "trailer"
	}
	return "RecordKind(" + strconv.Itoa(int(k)) + ")"
}

// Header is the first record: who the backup belongs to and which recovery
// key it is for.
type Header struct {
	// Version is the archive's format version, set by the Reader. Writers
	// always write FormatVersion.
	Version uint16
	// Username is the account's name (1..MaxNameSize bytes of UTF-8).
	Username string
	// Server is the URL of the server the account lives on.
	Server string
	// AccountKey is the account key; the archive holds its 64-byte seed
	// and its public key, and the Reader checks that they agree.
	AccountKey *identity.AccountKey
	// Created is when the backup was made (the writer's clock). A Writer
	// given the zero time writes the current time.
	Created time.Time
	// KeyID names the recovery key the archive is encrypted for (KeyID,
	// RecipientKeyID). Writers fill it in; the Reader checks it against the
	// key that opened the archive.
	KeyID [KeyIDSize]byte
}

// Contact is one contact record.
type Contact struct {
	Username string
	// DeviceList is the last signed device list (SignedDeviceList.Marshal)
	// the device verified for the contact, as the client store keeps it;
	// opaque to this package.
	DeviceList []byte
	// Verified records that the user compared safety numbers.
	Verified bool
	Added    time.Time
}

// Setting is one client setting; its meaning is the SDK's.
type Setting struct {
	Name  string // 1..MaxSettingNameSize bytes of UTF-8
	Value []byte // 0..MaxSettingValueSize bytes
}

// Message is one message of the history, in either direction, as the
// client store keeps it.
type Message struct {
	ID           [16]byte
	Conversation string // the other account of the conversation
	Sender       string
	SenderDevice [16]byte
	Outgoing     bool
	Sent         time.Time // the sender's clock
	Received     time.Time // the receiving device's clock
	Body         []byte    // at most MaxBodySize bytes
	State        uint8     // the client store's delivery state; opaque here
}

// Record is one record after the header. Kind says which of the fields
// holds it; the others are zero. A Record is a plain value, so reading one
// does not allocate it; its byte slices do not alias the Reader's buffers.
type Record struct {
	Kind    RecordKind
	Contact Contact
	Setting Setting
	Message Message
}

// trailer is the last record: how many records of each kind came before
// it, so that a reader detects missing records even in a plaintext that
// ends cleanly.
type trailer struct {
	contacts, settings, messages uint32
}

// --- field checks, shared by writers (caller errors) and readers
// (FormatError) ---

// maxUnixSeconds bounds the times a u64 of Unix nanoseconds holds (1970
// to 2262): any time of fewer whole seconds fits.
const maxUnixSeconds = math.MaxInt64 / int64(time.Second)

func checkName(what, s string, maxLen int) string {
	if r := checkNameSize(what, s, maxLen); r != "" {
		return r
	}
	if !utf8.ValidString(s) {
		return what + " is not UTF-8"
	}
	return ""
}

func checkNameSize(what, s string, maxLen int) string {
	switch {
	case s == "":
		return what + " is empty"
	case len(s) > maxLen:
		return what + " is longer than " + strconv.Itoa(maxLen) + " bytes"
	}
	return ""
}

func checkTime(what string, t time.Time) string {
	if s := t.Unix(); s < 0 || s >= maxUnixSeconds {
		return what + " is outside 1970–2262"
	}
	return ""
}

func (h *Header) check() string {
	if r := checkName("username", h.Username, MaxNameSize); r != "" {
		return r
	}
	if r := checkName("server URL", h.Server, MaxServerURLSize); r != "" {
		return r
	}
	if h.AccountKey == nil {
		return "account key missing"
	}
	return checkTime("created time", h.Created)
}

func (c *Contact) check() string {
	if r := checkName("contact username", c.Username, MaxNameSize); r != "" {
		return r
	}
	return checkTime("contact added time", c.Added)
}

func (s *Setting) check() string {
	return checkName("setting name", s.Name, MaxSettingNameSize)
}

// checkShape checks a message's fields except for the names' UTF-8, which
// the Writer checks while it copies them (appendMessage, then checkUTF8 to
// say which name is wrong).
func (m *Message) checkShape() string {
	// Every message passes: test the common case at once, and find the
	// reason only for a message that fails.
	if uint(len(m.Conversation)-1) < MaxNameSize && uint(len(m.Sender)-1) < MaxNameSize &&
		uint64(m.Sent.Unix()) < uint64(maxUnixSeconds) && uint64(m.Received.Unix()) < uint64(maxUnixSeconds) {
		return ""
	}
	if r := checkNameSize("conversation", m.Conversation, MaxNameSize); r != "" {
		return r
	}
	if r := checkNameSize("sender", m.Sender, MaxNameSize); r != "" {
		return r
	}
	if r := checkTime("sent time", m.Sent); r != "" {
		return r
	}
	return checkTime("received time", m.Received)
}

func (m *Message) checkUTF8() string {
	if !utf8.ValidString(m.Conversation) {
		return "conversation is not UTF-8"
	}
	if !utf8.ValidString(m.Sender) {
		return "sender is not UTF-8"
	}
	return ""
}

// --- encoding ---

func appendRecordHeader(b []byte, kind RecordKind, n int) []byte {
	return append(b, byte(kind), byte(n>>16), byte(n>>8), byte(n))
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendU24(b []byte, n int) []byte { return append(b, byte(n>>16), byte(n>>8), byte(n)) }

func appendPrefix(b []byte, version uint16) []byte {
	b = append(b, magic...)
	return binary.BigEndian.AppendUint16(b, version)
}

func headerSize(h *Header) int { return headerFixed + len(h.Username) + len(h.Server) }

func appendHeader(b []byte, h *Header) []byte {
	b = appendRecordHeader(b, recordHeader, headerSize(h))
	b = append(b, byte(len(h.Username)))
	b = append(b, h.Username...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Server)))
	b = append(b, h.Server...)
	seed := h.AccountKey.Seed()
	b = append(b, seed...)
	clear(seed)
	b = append(b, h.AccountKey.Public().Bytes()...)
	b = appendTime(b, h.Created)
	return append(b, h.KeyID[:]...)
}

func contactSize(c *Contact) int { return contactFixed + len(c.Username) + len(c.DeviceList) }

func appendContact(b []byte, c *Contact) []byte {
	b = appendRecordHeader(b, KindContact, contactSize(c))
	b = append(b, byte(len(c.Username)))
	b = append(b, c.Username...)
	b = appendBool(b, c.Verified)
	b = appendTime(b, c.Added)
	b = appendU24(b, len(c.DeviceList))
	return append(b, c.DeviceList...)
}

func settingSize(s *Setting) int { return 1 + len(s.Name) + 3 + len(s.Value) }

func appendSetting(b []byte, s *Setting) []byte {
	b = appendRecordHeader(b, KindSetting, settingSize(s))
	b = append(b, byte(len(s.Name)))
	b = append(b, s.Name...)
	b = appendU24(b, len(s.Value))
	return append(b, s.Value...)
}

func messageSize(m *Message) int {
	return messageFixed + len(m.Conversation) + len(m.Sender) + len(m.Body)
}

// appendMessage appends m's record to b and reports whether its names are
// UTF-8; the caller has checked everything else (Message.checkShape, the
// body size limit). It runs for every message of a history, so it grows b
// once and writes every field by offset, and it checks the names while it
// copies them (putName): a history's names are short ASCII account names.
// If ok is false, the bytes after len(b) are garbage and the caller keeps
// b[:len(b)] of the returned slice.
func appendMessage(b []byte, m *Message) (_ []byte, ok bool) {
	conv, sender, body := m.Conversation, m.Sender, m.Body
	n := messageFixed + len(conv) + len(sender) + len(body)
	start := len(b)
	b = slices.Grow(b, recordHeaderSize+n)
	b = b[:start+recordHeaderSize+n]
	// The fixed fields, through the conversation's length byte, as an
	// array: one bounds check for all of them.
	const oConv = recordHeaderSize + messageFixed - 5
	f := (*[oConv + 1]byte)(b[start:])
	f[0], f[1], f[2], f[3] = byte(KindMessage), byte(n>>16), byte(n>>8), byte(n)
	*(*[16]byte)(f[4:20]) = m.ID
	*(*[16]byte)(f[20:36]) = m.SenderDevice
	f[36] = 0
	if m.Outgoing {
		f[36] = 1
	}
	f[37] = m.State
	binary.BigEndian.PutUint64(f[38:46], uint64(m.Sent.UnixNano()))
	binary.BigEndian.PutUint64(f[46:54], uint64(m.Received.UnixNano()))
	f[oConv] = byte(len(conv))
	p := b[start+len(f):]
	ascii1 := putName(p, conv)
	p = p[len(conv):]
	p[0] = byte(len(sender))
	ascii2 := putName(p[1:], sender)
	t := (*[3]byte)(p[1+len(sender):])
	t[0], t[1], t[2] = byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	copy(p[1+len(sender)+3:], body)
	if ascii1 && ascii2 {
		return b, true
	}
	return b, utf8.ValidString(conv) && utf8.ValidString(sender)
}

// putName copies s to the front of p (which must hold it) and reports
// whether s is ASCII. It moves 8 bytes at a time (the last word overlapping
// the one before it), or two overlapping halves of that for shorter names:
// for the short names of a history this is cheaper than a copy and a
// separate UTF-8 check.
func putName(p []byte, s string) (ascii bool) {
	const hi = 0x8080808080808080
	n := len(s)
	p = p[:n]
	var or uint64
	switch {
	case n >= 8:
		for i := 0; i+8 <= n; i += 8 {
			w := le64(s[i:])
			binary.LittleEndian.PutUint64(p[i:], w)
			or |= w
		}
		w := le64(s[n-8:])
		binary.LittleEndian.PutUint64(p[n-8:], w)
		or |= w
	case n >= 4:
		w1, w2 := le32(s), le32(s[n-4:])
		binary.LittleEndian.PutUint32(p, w1)
		binary.LittleEndian.PutUint32(p[n-4:], w2)
		or = uint64(w1 | w2)
	default:
		for i := range n {
			p[i] = s[i]
			or |= uint64(s[i])
		}
	}
	return or&hi == 0
}

// le64 and le32 read little-endian words from a string (the compiler
// makes each one load).
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func le32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func appendTrailer(b []byte, t trailer) []byte {
	b = appendRecordHeader(b, recordTrailer, trailerSize)
	b = binary.BigEndian.AppendUint32(b, t.contacts)
	b = binary.BigEndian.AppendUint32(b, t.settings)
	return binary.BigEndian.AppendUint32(b, t.messages)
}

// --- decoding helpers: a cursor over one record body ---

// cursor reads fields from a record body; ok turns false on the first
// short read and stays false.
type cursor struct {
	b  []byte
	ok bool
}

func (c *cursor) bytes(n int) []byte {
	if !c.ok || len(c.b) < n {
		c.ok = false
		return nil
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) u8() byte {
	if b := c.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (c *cursor) u16() int {
	if b := c.bytes(2); b != nil {
		return int(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (c *cursor) u24() int {
	if b := c.bytes(3); b != nil {
		return int(b[0])<<16 | int(b[1])<<8 | int(b[2])
	}
	return 0
}

func (c *cursor) u32() uint32 {
	if b := c.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// time reads a u64 of Unix nanoseconds; values past 2262 fail.
func (c *cursor) time() time.Time {
	b := c.bytes(8)
	if b == nil {
		return time.Time{}
	}
	v := binary.BigEndian.Uint64(b)
	if v > math.MaxInt64 {
		c.ok = false
		return time.Time{}
	}
	return time.Unix(0, int64(v)).UTC()
}

// bool reads a byte that must be 0 or 1.
func (c *cursor) bool() bool {
	v := c.u8()
	if v > 1 {
		c.ok = false
	}
	return v == 1
}

func formatErr(off int64, kind RecordKind, reason string) error {
	return &FormatError{Offset: off, Reason: fmt.Sprintf("%v record: %s", kind, reason)}
}
