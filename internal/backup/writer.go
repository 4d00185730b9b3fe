package backup

import (
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"
)

// flushSize is how much plaintext the Writer gathers before handing it to
// age, which copies it into its 64 KiB chunk buffer. A quarter of a chunk
// keeps the Writer's buffer in the L1 cache, so that age's copy of it is
// cheap: measured, 16 KiB beat 8, 32 and 64 KiB (docs/backup.md §8).
const flushSize = 16 << 10

// errClosed reports a Writer used after Close or after an error.
var errClosed = errors.New("backup: the archive writer is closed")

// Writer writes an archive: the header (by NewWriter), then any number of
// contacts, settings and messages, then the trailer (by Close). It
// encrypts as it goes, so memory use does not grow with the archive. A
// Writer is not safe for concurrent use. After any error the Writer is
// unusable and what it wrote must be discarded.
type Writer struct {
	enc    io.WriteCloser // age's encrypting writer
	buf    []byte         // plaintext not yet handed to enc
	counts trailer
	err    error // sticky: the first error, or errClosed
}

// NewWriter starts an archive for h encrypted to k's age recipient (and to
// nothing else). h.KeyID is set to k.KeyID(); a zero h.Created becomes the
// current time. age writes its header to dst at once, then the ciphertext
// in 64 KiB chunks as the records fill them.
func NewWriter(dst io.Writer, k RecoveryKey, h Header) (*Writer, error) {
	return NewRecipientWriter(dst, k.Recipient(), h)
}

// NewRecipientWriter is NewWriter for a device that keeps only the age
// recipient of the recovery key (so that automatic backups need not hold
// the key itself). h.KeyID is set to RecipientKeyID(r).
func NewRecipientWriter(dst io.Writer, r *age.HybridRecipient, h Header) (*Writer, error) {
	if r == nil {
		return nil, errors.New("backup: no recipient")
	}
	id := RecipientKeyID(r)
	if h.KeyID != ([KeyIDSize]byte{}) && h.KeyID != id {
		return nil, errors.New("backup: header key ID is not the recipient's")
	}
	h.KeyID = id
	if h.Created.IsZero() {
		h.Created = time.Now()
	}
	if reason := h.check(); reason != "" {
		return nil, errors.New("backup: cannot write header: " + reason)
	}
	enc, err := age.Encrypt(dst, r)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	w := &Writer{enc: enc, buf: make([]byte, 0, 2*flushSize)}
	w.buf = appendPrefix(w.buf, FormatVersion)
	w.buf = appendHeader(w.buf, &h)
	return w, nil
}

// AddContact appends a contact record.
func (w *Writer) AddContact(c Contact) error {
	if w.err != nil {
		return w.err
	}
	if reason := c.check(); reason != "" {
		return errors.New("backup: cannot add contact: " + reason)
	}
	if len(c.DeviceList) > MaxDeviceListSize {
		return &LimitError{What: "contact device list size", Limit: MaxDeviceListSize}
	}
	if w.counts.contacts >= MaxContacts {
		return &LimitError{What: "number of contacts", Limit: MaxContacts}
	}
	w.counts.contacts++
	w.buf = appendContact(w.buf, &c)
	return w.flushIfFull()
}

// AddSetting appends a setting record.
func (w *Writer) AddSetting(s Setting) error {
	if w.err != nil {
		return w.err
	}
	if reason := s.check(); reason != "" {
		return errors.New("backup: cannot add setting: " + reason)
	}
	if len(s.Value) > MaxSettingValueSize {
		return &LimitError{What: "setting value size", Limit: MaxSettingValueSize}
	}
	if w.counts.settings >= MaxSettings {
		return &LimitError{What: "number of settings", Limit: MaxSettings}
	}
	w.counts.settings++
	w.buf = appendSetting(w.buf, &s)
	return w.flushIfFull()
}

// AddMessage appends a message record. It takes a pointer because it runs
// once per message of the history and a Message is 150 bytes; it keeps no
// reference to m.
func (w *Writer) AddMessage(m *Message) error {
	if w.err != nil {
		return w.err
	}
	if m == nil {
		return errors.New("backup: cannot add a nil message")
	}
	if reason := m.checkShape(); reason != "" {
		return errors.New("backup: cannot add message: " + reason)
	}
	if len(m.Body) > MaxBodySize {
		return &LimitError{What: "message body size", Limit: MaxBodySize}
	}
	if w.counts.messages >= MaxMessages {
		return &LimitError{What: "number of messages", Limit: MaxMessages}
	}
	b, ok := appendMessage(w.buf, m)
	if !ok {
		w.buf = b[:len(w.buf)]
		return errors.New("backup: cannot add message: " + m.checkUTF8())
	}
	w.buf = b
	w.counts.messages++
	if len(w.buf) < flushSize {
		return nil // (the common case, without a call)
	}
	return w.flushIfFull()
}

func (w *Writer) flushIfFull() error {
	if len(w.buf) < flushSize {
		return nil
	}
	if _, err := w.enc.Write(w.buf); err != nil {
		w.release()
		w.err = fmt.Errorf("backup: writing archive: %w", err)
		return w.err
	}
	// The buffer is cleared once, when the Writer is done with it: clearing
	// it at every flush would overwrite plaintext that the next records
	// overwrite anyway (and cost about 1% of a backup).
	w.buf = w.buf[:0]
	return nil
}

// release clears the plaintext buffer, all of it (best effort: age's own
// buffer and the caller's records are beyond reach), and drops it.
func (w *Writer) release() {
	clear(w.buf[:cap(w.buf)])
	w.buf = nil
}

// Close writes the trailer and finishes the age stream. It does not close
// dst. The archive is complete only if Close returns nil.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.buf = appendTrailer(w.buf, w.counts)
	_, err := w.enc.Write(w.buf)
	w.release()
	if err == nil {
		err = w.enc.Close()
	}
	if err != nil {
		w.err = fmt.Errorf("backup: writing archive: %w", err)
		return w.err
	}
	w.err = errClosed
	return nil
}
