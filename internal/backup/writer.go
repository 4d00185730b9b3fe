package backup

import (
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"
)

// flushSize is how much plaintext the Writer gathers before handing it to
// age: one age payload chunk (64 KiB), so that age seals whole chunks
// straight from its buffer.
const flushSize = 512 << 10

// errClosed reports a Writer used after Close or after an error.
var errClosed = errors.New("backup: the archive writer is closed")

// Writer writes an archive: the header (by NewWriter), then any number of
// contacts, settings and messages, then the trailer (by Close). It
// encrypts as it goes, so memory use does not grow with the archive. A
// Writer is not safe for concurrent use. After any error the Writer is
// unusable and what it wrote must be discarded.
//
// Each 64 KiB of plaintext is encrypted and written to dst in a goroutine
// while the caller adds the next records (one such write at a time). So an
// error writing to dst is returned by a later Add call or by Close, which
// waits for the write in progress: after Close returns, dst is no longer
// written. A Writer that is dropped without Close leaks nothing: its
// goroutine ends when its write returns.
type Writer struct {
	enc    io.WriteCloser // age's encrypting writer
	buf    []byte         // plaintext not yet handed to enc
	spare  []byte         // the other buffer: enc's while busy
	busy   bool           // a goroutine is writing spare to enc
	wrote  chan error     // its outcome (capacity 1: it never blocks)
	counts trailer
	err    error // sticky: the first error, or errClosed
}

// newWriter returns a Writer that hands its plaintext to enc.
func newWriter(enc io.WriteCloser) *Writer {
	return &Writer{enc: enc, buf: make([]byte, 0, flushSize+MaxRecordSize), wrote: make(chan error, 1)}
}

// NewWriter starts an archive for h encrypted to k's age recipient (and to
// nothing else). h.KeyID is set to k.KeyID(); a zero h.Created becomes the
// current time. Nothing is written to dst until the first 64 KiB of
// plaintext or Close.
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
	w := newWriter(enc)
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
	if reason := m.check(); reason != "" {
		return errors.New("backup: cannot add message: " + reason)
	}
	if len(m.Body) > MaxBodySize {
		return &LimitError{What: "message body size", Limit: MaxBodySize}
	}
	if w.counts.messages >= MaxMessages {
		return &LimitError{What: "number of messages", Limit: MaxMessages}
	}
	w.counts.messages++
	w.buf = appendMessage(w.buf, m)
	return w.flushIfFull()
}

func (w *Writer) flushIfFull() error {
	if len(w.buf) < flushSize {
		return nil
	}
	if err := w.wait(); err != nil {
		return err
	}
	b := w.buf
	if w.spare == nil {
		w.spare = make([]byte, 0, flushSize+MaxRecordSize)
	}
	w.buf, w.spare, w.busy = w.spare[:0], b, true
	go writeOut(w.enc, b, w.wrote)
	return nil
}

// writeOut writes b to enc and sends the outcome on out.
func writeOut(enc io.Writer, b []byte, out chan<- error) {
	_, err := enc.Write(b)
	// The buffer held plaintext; clear it before reuse (best effort).
	clear(b)
	out <- err
}

// wait waits for the write in progress, if any, and makes its error the
// Writer's.
func (w *Writer) wait() error {
	if !w.busy {
		return nil
	}
	w.busy = false
	if err := <-w.wrote; err != nil {
		w.err = fmt.Errorf("backup: writing archive: %w", err)
		return w.err
	}
	return nil
}

// Close writes the trailer and finishes the age stream. It does not close
// dst. The archive is complete only if Close returns nil. Close waits for
// the Writer's goroutine, also when it returns an error.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err // (w.err is set only when no write is in progress)
	}
	if err := w.wait(); err != nil {
		clear(w.buf)
		w.buf, w.spare = nil, nil
		return err
	}
	w.buf = appendTrailer(w.buf, w.counts)
	_, err := w.enc.Write(w.buf)
	clear(w.buf)
	w.buf, w.spare = nil, nil
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
