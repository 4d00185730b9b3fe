package backup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
)

const (
	// maxInterned bounds the distinct names the Reader shares between
	// records (a conversation's name is in every message of it).
	maxInterned = 4096
)

// errReaderClosed reports a Reader used after Close.
var errReaderClosed = errors.New("backup: the archive reader is closed")

// Reader reads an archive: NewReader decrypts and checks the header, Next
// returns the records one by one. A Reader is not safe for concurrent use.
//
// Records are returned as they are read, before the trailer is checked:
// a caller must treat everything as provisional until Next returns io.EOF,
// and discard it all on any error (docs/backup.md §4.4).
//
// While the caller handles one part of the archive, the Reader decrypts
// the next in a goroutine (one read of src at a time, at most two pieces
// of 1 MiB ahead). That goroutine ends on its own once it has no buffer
// to read into, so a Reader that is dropped leaks nothing once the read in
// progress returns; Close waits for it, so that src is no longer read
// when Close returns.
type Reader struct {
	src  io.Reader // plaintext
	ct   *ciphertextReader
	buf  []byte // buf[r:w] is plaintext read but not parsed
	r, w int
	off  int64 // plaintext offset of buf[r]
	eof  bool  // src returned io.EOF
	rerr error // src returned this error after the data in buf

	// ahead reads the plaintext in a goroutine, ahead of the parser
	// (readahead.go); nil until the first read.
	ahead *readAhead

	header Header
	counts trailer
	done   bool  // the trailer was read and the stream ended
	err    error // sticky
	closed bool

	names  map[string]string
	recent [1 << recentBits]nameSlot // a cache in front of names
}

// NewReader decrypts src with k's age identity and reads the archive's
// header. It fails with ErrWrongRecoveryKey if k does not open src,
// ErrTruncated or ErrTampered if src is damaged, and
// ErrUnsupportedVersion for another format version.
func NewReader(src io.Reader, k RecoveryKey) (*Reader, error) {
	ct := &ciphertextReader{r: src}
	identity := k.AgeIdentity()
	pt, err := age.Decrypt(ct, identity)
	if err != nil {
		return nil, ct.classify(err, true)
	}
	id := RecipientKeyID(identity.Recipient())
	return newPlainReader(pt, ct, &id)
}

// newPlainReader reads an archive plaintext. ct, if not nil, classifies
// decryption errors; keyID, if not nil, must match the header's. The fuzz
// target and the vector tests enter here, without age.
func newPlainReader(src io.Reader, ct *ciphertextReader, keyID *[KeyIDSize]byte) (*Reader, error) {
	r := &Reader{src: src, ct: ct, names: make(map[string]string)}
	if err := r.fill(prefixSize); err != nil {
		return nil, r.fail(err, true)
	}
	p := r.buf[r.r : r.r+prefixSize]
	if string(p[:len(magic)]) != magic {
		return nil, r.fail(&FormatError{Offset: 0, Reason: "not a Parley backup"}, false)
	}
	if v := int(p[len(magic)])<<8 | int(p[len(magic)+1]); v != FormatVersion {
		return nil, r.fail(fmt.Errorf("%w: the archive is version %d, this client reads %d", ErrUnsupportedVersion, v, FormatVersion), false)
	}
	r.consume(prefixSize)
	kind, body, off, err := r.record()
	if err != nil {
		return nil, r.fail(err, true)
	}
	if kind != recordHeader {
		return nil, r.fail(formatErr(off, kind, "the archive does not start with its header"), false)
	}
	if err := r.parseHeader(body, off, keyID); err != nil {
		return nil, r.fail(err, false)
	}
	return r, nil
}

// Header returns the archive's header.
func (r *Reader) Header() Header { return r.header }

// Close stops reading: it waits for a read of src in progress to return
// and releases the Reader's buffers (not the records it returned, which
// stay valid). It does not close src. Next after Close returns an error,
// or io.EOF if the archive had been read to its end. Close is idempotent
// and always returns nil; calling it is needed only to know that src is
// no longer being read (a dropped Reader's read-ahead ends by itself).
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.wait()
	if r.err == nil && !r.done {
		r.err = errReaderClosed
	}
	r.buf = nil
	r.r, r.w = 0, 0
	return nil
}

// Next returns the next record. After the last record it checks the
// trailer's counts and that the archive ends there (which completes age's
// authentication of the final chunk), and returns io.EOF. It never returns
// io.EOF for an archive without a valid trailer: that is ErrTruncated.
func (r *Reader) Next() (rec Record, err error) {
	if r.err != nil {
		return Record{}, r.err
	}
	if r.done {
		return Record{}, io.EOF
	}
	// (rec is the named result: parsed in place, not copied out.)
	kind, body, off, err := r.record()
	if err != nil {
		return Record{}, r.fail(err, true)
	}
	switch kind {
	case KindContact:
		if r.counts.contacts >= MaxContacts {
			return Record{}, r.fail(&LimitError{What: "number of contacts", Limit: MaxContacts}, false)
		}
		r.counts.contacts++
		err = r.parseContact(body, off, &rec)
	case KindSetting:
		if r.counts.settings >= MaxSettings {
			return Record{}, r.fail(&LimitError{What: "number of settings", Limit: MaxSettings}, false)
		}
		r.counts.settings++
		err = r.parseSetting(body, off, &rec)
	case KindMessage:
		if r.counts.messages >= MaxMessages {
			return Record{}, r.fail(&LimitError{What: "number of messages", Limit: MaxMessages}, false)
		}
		r.counts.messages++
		err = r.parseMessage(body, off, &rec)
	case recordTrailer:
		if err := r.finish(body, off); err != nil {
			return Record{}, r.fail(err, true)
		}
		r.done = true
		return Record{}, io.EOF
	case recordHeader:
		err = formatErr(off, kind, "a second header")
	default:
		err = formatErr(off, kind, "unknown record type")
	}
	if err != nil {
		return Record{}, r.fail(err, false)
	}
	rec.Kind = kind
	return rec, nil
}

// fail records err as the Reader's sticky error. Errors from reading go
// through the ciphertext classification when classify is set. It first
// waits for the read-ahead: ct is then no longer written, and src no
// longer read.
func (r *Reader) fail(err error, classify bool) error {
	r.wait()
	if classify && r.ct != nil {
		err = r.ct.classify(err, false)
	} else if errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%w: the plaintext ends inside a record", ErrTruncated)
	}
	r.err = err
	return err
}

// --- buffering ---

// fill makes buf[r:w] hold at least n bytes, or returns io.ErrUnexpectedEOF
// (or a read error) if the plaintext ends first.
//
// Message bodies are handed out as slices of buf, not copied one by one.
// So a buffer is never written again once it holds plaintext: each piece
// read is copied into a new slab, behind the unparsed tail of the old
// one. An old slab lives on as long as the bodies in it.
func (r *Reader) fill(n int) error {
	for r.w-r.r < n {
		if r.eof {
			return io.ErrUnexpectedEOF
		}
		if r.rerr != nil {
			return r.rerr
		}
		if err := r.advance(); err != nil {
			return err
		}
	}
	return nil
}

// advance appends the next piece of plaintext to buf[r:w], starting the
// read-ahead on the first call. At the end of the plaintext it sets eof
// and returns nil; after a read error it sets rerr and returns it once the
// data before it has been parsed.
func (r *Reader) advance() error {
	switch {
	case r.closed:
		return errReaderClosed
	case r.eof:
		return io.ErrUnexpectedEOF
	case r.rerr != nil:
		return r.rerr
	}
	if r.ahead == nil {
		r.ahead = newReadAhead(r.src)
	}
	res := r.ahead.next()
	if res.n > 0 {
		// The new slab: the unparsed tail, then the data. Appended to a
		// full slice, it is allocated without being zeroed first (the
		// runtime zeroes only what an append does not write).
		tail := r.buf[r.r:r.w]
		slab := append(tail[:len(tail):len(tail)], res.buf[:res.n]...)
		r.buf, r.r, r.w = slab, 0, len(slab)
	}
	switch {
	case res.err == nil:
		r.ahead.requeue(res.buf)
		return nil
	case res.err == io.EOF:
		r.eof = true
	default:
		r.rerr = res.err
	}
	r.ahead.stop() // (no read is in progress after the last one)
	if r.rerr != nil && r.w > r.r {
		return nil // the data before the error is parsed first
	}
	return r.rerr
}

// wait stops the read-ahead: it waits for the reads in progress and drops
// their data.
func (r *Reader) wait() {
	if r.ahead != nil {
		r.ahead.stop()
	}
}

func (r *Reader) consume(n int) {
	r.r += n
	r.off += int64(n)
}

// record reads the next record's type and body. The body aliases the
// read buffer until the next call. At a clean end of the plaintext it
// returns ErrTruncated: only the trailer may end an archive.
func (r *Reader) record() (RecordKind, []byte, int64, error) {
	if err := r.fill(recordHeaderSize); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) && r.w == r.r {
			return 0, nil, r.off, fmt.Errorf("%w: the records end without a trailer", ErrTruncated)
		}
		return 0, nil, r.off, err
	}
	h := r.buf[r.r : r.r+recordHeaderSize]
	kind := RecordKind(h[0])
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if n > MaxRecordSize {
		return 0, nil, r.off, &LimitError{What: "record size", Limit: MaxRecordSize}
	}
	if err := r.fill(recordHeaderSize + n); err != nil {
		return 0, nil, r.off, err
	}
	off := r.off
	body := r.buf[r.r+recordHeaderSize : r.r+recordHeaderSize+n : r.r+recordHeaderSize+n]
	r.consume(recordHeaderSize + n)
	return kind, body, off, nil
}

// name returns b as a string — valid UTF-8 of 1..MaxNameSize bytes —
// shared with earlier records of the same name. A history names few
// accounts many times, so most lookups hit a small direct-mapped cache
// before the map. The cache compares a name by its length and two words
// (nameKey), which are the whole name up to 16 bytes; a longer name is
// compared in full.
func (r *Reader) name(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", false
	}
	x, y := nameKey(b)
	slot := &r.recent[nameHash(x, y, len(b))]
	if slot.n == len(b) && slot.x == x && slot.y == y && (len(b) <= 16 || string(b) == slot.s) {
		return slot.s, true
	}
	s, ok := r.names[string(b)]
	if !ok {
		if len(b) > MaxNameSize || !utf8.Valid(b) {
			return "", false
		}
		s = string(b)
		if len(r.names) < maxInterned {
			r.names[s] = s
		}
	}
	*slot = nameSlot{n: len(b), x: x, y: y, s: s}
	return s, true
}

// nameHash picks the cache slot of a name from its key.
func nameHash(x, y uint64, n int) uint64 {
	v := x ^ bits.RotateLeft64(y, 29) ^ uint64(n)
	v ^= v >> 32
	return (v * 0x9e3779b97f4a7c15) >> (64 - recentBits)
}

// recentBits is log2 of the number of slots of the Reader's name cache.
const recentBits = 8

// nameSlot is one entry of the Reader's name cache: a name and its key.
type nameSlot struct {
	n    int
	x, y uint64
	s    string
}

// nameKey returns two words of b (1 or more bytes) that, with len(b),
// determine b if it is at most 16 bytes long: its first and last 8 bytes,
// or first and last 4, or for 1..3 bytes its first, middle and last.
func nameKey(b []byte) (x, y uint64) {
	switch n := len(b); {
	case n >= 8:
		return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4:
		return uint64(binary.LittleEndian.Uint32(b)), uint64(binary.LittleEndian.Uint32(b[n-4:]))
	default:
		return uint64(b[0]) | uint64(b[n/2])<<8 | uint64(b[n-1])<<16, 0
	}
}

// --- record bodies ---

func (r *Reader) parseHeader(body []byte, off int64, keyID *[KeyIDSize]byte) error {
	c := cursor{b: body, ok: true}
	user := c.bytes(int(c.u8()))
	server := c.bytes(c.u16())
	seed := c.bytes(primitives.SigningSeedSize)
	pub := c.bytes(identity.AccountKeySize)
	created := c.time()
	id := c.bytes(KeyIDSize)
	if !c.ok {
		return formatErr(off, recordHeader, "truncated")
	}
	if len(c.b) != 0 {
		return formatErr(off, recordHeader, "trailing bytes")
	}
	h := Header{Version: FormatVersion, Username: string(user), Server: string(server), Created: created, KeyID: [KeyIDSize]byte(id)}
	key, err := identity.NewAccountKey(seed)
	if err != nil {
		return formatErr(off, recordHeader, "invalid account key seed")
	}
	stored, err := identity.ParseAccountPublicKey(pub)
	if err != nil || !stored.Equal(key.Public()) {
		return formatErr(off, recordHeader, "the account public key does not match the account key")
	}
	h.AccountKey = key
	if reason := h.check(); reason != "" {
		return formatErr(off, recordHeader, reason)
	}
	if keyID != nil && h.KeyID != *keyID {
		return formatErr(off, recordHeader, "the header names another recovery key")
	}
	r.header = h
	return nil
}

func (r *Reader) parseContact(body []byte, off int64, rec *Record) error {
	c := cursor{b: body, ok: true}
	user := c.bytes(int(c.u8()))
	verified := c.bool()
	added := c.time()
	list := c.bytes(c.u24())
	if !c.ok || len(c.b) != 0 {
		return formatErr(off, KindContact, "truncated, trailing bytes, or a bad flag or time")
	}
	if len(list) > MaxDeviceListSize {
		return &LimitError{What: "contact device list size", Limit: MaxDeviceListSize}
	}
	ct := Contact{Username: string(user), Verified: verified, Added: added, DeviceList: bytes.Clone(list)}
	if reason := ct.check(); reason != "" {
		return formatErr(off, KindContact, reason)
	}
	rec.Contact = ct
	return nil
}

func (r *Reader) parseSetting(body []byte, off int64, rec *Record) error {
	c := cursor{b: body, ok: true}
	name := c.bytes(int(c.u8()))
	value := c.bytes(c.u24())
	if !c.ok || len(c.b) != 0 {
		return formatErr(off, KindSetting, "truncated or trailing bytes")
	}
	if len(value) > MaxSettingValueSize {
		return &LimitError{What: "setting value size", Limit: MaxSettingValueSize}
	}
	s := Setting{Name: string(name), Value: bytes.Clone(value)}
	if reason := s.check(); reason != "" {
		return formatErr(off, KindSetting, reason)
	}
	rec.Setting = s
	return nil
}

// parseMessage is the hot path of a restore: it allocates nothing but the
// string of a name not seen before (the body aliases the plaintext buffer,
// see fill).
func (r *Reader) parseMessage(body []byte, off int64, rec *Record) error {
	// The fixed part is read by offset, the three variable fields through
	// their length prefixes; every index is checked against len(body).
	const (
		oOutgoing = 32
		oState    = 33
		oSent     = 34
		oReceived = 42
		oConv     = 50 // conversation length, then conversation
	)
	m := &rec.Message
	if len(body) < messageFixed {
		return formatErr(off, KindMessage, "truncated")
	}
	m.ID = [16]byte(body[0:16])
	m.SenderDevice = [16]byte(body[16:32])
	out := body[oOutgoing]
	m.Outgoing = out == 1
	m.State = body[oState]
	sent := binary.BigEndian.Uint64(body[oSent:])
	received := binary.BigEndian.Uint64(body[oReceived:])
	i := oConv + 1 + int(body[oConv])
	if out > 1 || sent > math.MaxInt64 || received > math.MaxInt64 || i >= len(body) {
		return formatErr(off, KindMessage, "truncated, or a bad flag or time")
	}
	conv := body[oConv+1 : i]
	j := i + 1 + int(body[i])
	if j+3 > len(body) {
		return formatErr(off, KindMessage, "truncated")
	}
	sender := body[i+1 : j]
	n := int(body[j])<<16 | int(body[j+1])<<8 | int(body[j+2])
	if j+3+n != len(body) {
		return formatErr(off, KindMessage, "body length does not match the record")
	}
	if n > MaxBodySize {
		return &LimitError{What: "message body size", Limit: MaxBodySize}
	}
	m.Sent = time.Unix(0, int64(sent)).UTC()
	m.Received = time.Unix(0, int64(received)).UTC()
	var ok1, ok2 bool
	m.Conversation, ok1 = r.name(conv)
	// (Comparisons, not a switch on string(sender), which would allocate.)
	if string(sender) == m.Conversation {
		m.Sender, ok2 = m.Conversation, ok1 // an incoming message
	} else if string(sender) == r.header.Username {
		m.Sender, ok2 = r.header.Username, true // an outgoing one
	} else {
		m.Sender, ok2 = r.name(sender)
	}
	if !ok1 || !ok2 {
		return formatErr(off, KindMessage, "conversation or sender is not a name")
	}
	if n > 0 {
		m.Body = body[j+3:]
	} else {
		m.Body = nil
	}
	return nil
}

// finish checks the trailer against what was read and that the plaintext
// ends right after it.
func (r *Reader) finish(body []byte, off int64) error {
	c := cursor{b: body, ok: true}
	t := trailer{contacts: c.u32(), settings: c.u32(), messages: c.u32()}
	if !c.ok || len(c.b) != 0 {
		return formatErr(off, recordTrailer, "wrong size")
	}
	if t != r.counts {
		return formatErr(off, recordTrailer, fmt.Sprintf("it counts %d contacts, %d settings, %d messages; the archive holds %d, %d, %d",
			t.contacts, t.settings, t.messages, r.counts.contacts, r.counts.settings, r.counts.messages))
	}
	// Reading on to the end makes age check the final chunk's tag and
	// that nothing follows it.
	if r.w > r.r {
		return &FormatError{Offset: r.off, Reason: "data after the trailer"}
	}
	for !r.eof {
		if err := r.advance(); err != nil {
			return err
		}
		if r.w > r.r {
			return &FormatError{Offset: r.off, Reason: "data after the trailer"}
		}
	}
	return nil
}

// --- classifying what age reports ---

// ciphertextReader passes the archive to age and remembers whether the
// input ended and how, so that age's errors can be classified: age reports
// a chunk cut short and a chunk modified with the same error.
type ciphertextReader struct {
	r    io.Reader
	n    int64
	head []byte // the first len(ageIntro) bytes
	eof  bool   // the input returned io.EOF
	err  error  // the input's own error, if any
}

// ageIntro is the first line of every age file.
const ageIntro = "age-encryption.org/v1\n"

func (c *ciphertextReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if len(c.head) < len(ageIntro) {
		c.head = append(c.head, p[:min(n, len(ageIntro)-len(c.head))]...)
	}
	c.n += int64(n)
	switch {
	case err == io.EOF:
		c.eof = true
	case err != nil:
		c.err = err
	}
	return n, err
}

// classify maps an error from age (or from reading the plaintext) to the
// package's errors. inHeader is set for errors of age.Decrypt itself.
func (c *ciphertextReader) classify(err error, inHeader bool) error {
	var noMatch *age.NoIdentityMatchError
	var limit *LimitError
	var format *FormatError
	switch {
	case errors.As(err, &noMatch):
		return ErrWrongRecoveryKey
	case errors.As(err, &limit), errors.As(err, &format), errors.Is(err, ErrTruncated), errors.Is(err, ErrTampered),
		errors.Is(err, ErrUnsupportedVersion):
		return err // already ours
	case c.err != nil && errors.Is(err, c.err):
		return fmt.Errorf("backup: reading the archive: %w", err)
	case errors.Is(err, io.ErrUnexpectedEOF) && !inHeader:
		// age: the payload ends without a final chunk.
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	case inHeader && c.n == 0 && c.eof:
		return fmt.Errorf("%w: the archive is empty", ErrTruncated)
	case inHeader && !strings.HasPrefix(ageIntro, string(c.head)) && !strings.HasPrefix(string(c.head), ageIntro):
		return fmt.Errorf("%w: not an age file", ErrTampered)
	case inHeader && (errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF")):
		// age's header parser reports a header or nonce cut short with
		// an "unexpected EOF" message that does not always wrap io.EOF
		// (TestTruncatedArchive cuts at every header byte).
		return fmt.Errorf("%w (%v)", ErrTruncated, err)
	case c.eof && !inHeader:
		// The input ended and a payload chunk failed authentication:
		// either the archive was cut inside that chunk or its end was
		// modified.
		return &damagedError{cause: err}
	}
	return fmt.Errorf("%w: %v", ErrTampered, err)
}
