package backup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/wire"
)

func TestArchiveRoundTrip(t *testing.T) {
	k := NewRecoveryKey()
	for _, n := range []int{0, 1, 50, 1000} {
		f := newFixture(n, 200)
		archive := f.write(t, k)
		got, err := readAll(bytes.NewReader(archive), k)
		if err != nil {
			t.Fatalf("%d messages: %v", n, err)
		}
		if d := f.diff(got); d != "" {
			t.Fatalf("%d messages: %s", n, d)
		}
		if got.header.KeyID != k.KeyID() {
			t.Fatal("header key ID is not the recovery key's")
		}
		// It is a standard age file for k's recipient.
		if !bytes.HasPrefix(archive, []byte("age-encryption.org/v1\n-> mlkem768x25519 ")) {
			t.Fatalf("archive starts %q", archive[:40])
		}
	}
}

func TestArchiveNextAfterEOF(t *testing.T) {
	k := NewRecoveryKey()
	r, err := NewReader(bytes.NewReader(newFixture(3, 10).write(t, k)), k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := drain(r); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("Next after the end: %v", err)
		}
	}
}

// TestRecipientWriter: a device that keeps only the recipient writes an
// archive the recovery key opens, with the same key ID.
func TestRecipientWriter(t *testing.T) {
	k := NewRecoveryKey()
	f := newFixture(5, 30)
	var buf bytes.Buffer
	w, err := NewRecipientWriter(&buf, k.Recipient(), f.header)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.messages {
		if err := w.AddMessage(&f.messages[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf, k)
	if err != nil {
		t.Fatal(err)
	}
	if r.Header().KeyID != k.KeyID() {
		t.Fatal("key ID differs")
	}
	got, err := drain(r)
	if err != nil || len(got.messages) != 5 {
		t.Fatalf("%v, %d messages", err, len(got.messages))
	}
	h := f.header
	h.KeyID = [8]byte{1}
	if _, err := NewRecipientWriter(io.Discard, k.Recipient(), h); err == nil {
		t.Fatal("a header with another key ID was accepted")
	}
}

func TestWrongRecoveryKey(t *testing.T) {
	k := NewRecoveryKey()
	archive := newFixture(10, 50).write(t, k)
	other := NewRecoveryKey()
	_, err := readAll(bytes.NewReader(archive), other)
	if !errors.Is(err, ErrWrongRecoveryKey) {
		t.Fatalf("another key: %v", err)
	}
	// A key one bit away is just another key.
	near := k
	near[0] ^= 0x80
	if _, err := readAll(bytes.NewReader(archive), near); !errors.Is(err, ErrWrongRecoveryKey) {
		t.Fatalf("a key one bit away: %v", err)
	}
	// An age file for an unrelated age identity.
	id, _ := age.GenerateHybridIdentity()
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, id.Recipient())
	w.Write([]byte("hello"))
	w.Close()
	if _, err := readAll(&buf, k); !errors.Is(err, ErrWrongRecoveryKey) {
		t.Fatalf("another identity's file: %v", err)
	}
}

// multiChunk returns an archive of about 4.5 age chunks of 64 KiB.
func multiChunk(t *testing.T, k RecoveryKey) (*fixture, []byte) {
	f := newFixture(1200, 240)
	return f, f.write(t, k)
}

// ageHeaderLen returns the length of the age header plus its 16-byte
// payload nonce: where the first payload chunk starts.
func ageHeaderLen(t *testing.T, archive []byte) int {
	i := bytes.Index(archive, []byte("\n--- "))
	if i < 0 {
		t.Fatal("no age header MAC line")
	}
	j := bytes.IndexByte(archive[i+1:], '\n')
	return i + 1 + j + 1 + 16
}

// TestTruncatedArchive cuts an archive at every byte of the age header and
// nonce, at and around every payload chunk boundary, at many points inside
// chunks and at every one of its last 40 bytes: each cut is ErrTruncated,
// never a wrong-key error and never a success.
func TestTruncatedArchive(t *testing.T) {
	k := NewRecoveryKey()
	_, archive := multiChunk(t, k)
	start := ageHeaderLen(t, archive)
	const enc = 64<<10 + 16
	cuts := map[int]bool{}
	for i := 0; i <= start; i++ {
		cuts[i] = true
	}
	for c := start; c < len(archive); c += enc {
		for d := -2; d <= 2; d++ {
			cuts[c+d] = true
		}
	}
	for c := start; c < len(archive); c += 4099 {
		cuts[c] = true
	}
	for c := len(archive) - 40; c < len(archive); c++ {
		cuts[c] = true
	}
	for c := range cuts {
		if c < 0 || c >= len(archive) {
			continue
		}
		_, err := readAll(bytes.NewReader(archive[:c]), k)
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: %v, want ErrTruncated", c, len(archive), err)
		}
	}
}

// TestTamperedArchive flips one bit at every byte of the age header and at
// a sample of payload bytes: each is refused, as tampering or (inside the
// recipient stanza, which only the right key could check) as a wrong key;
// a payload chunk modified before the end is ErrTampered and not
// ErrTruncated.
func TestTamperedArchive(t *testing.T) {
	k := NewRecoveryKey()
	_, archive := multiChunk(t, k)
	start := ageHeaderLen(t, archive)
	stanzaEnd := bytes.Index(archive, []byte("\n--- "))
	mod := bytes.Clone(archive)
	check := func(i int) {
		mod[i] ^= 0x04
		_, err := readAll(bytes.NewReader(mod), k)
		mod[i] = archive[i]
		switch {
		case i < stanzaEnd && errors.Is(err, ErrWrongRecoveryKey):
		case errors.Is(err, ErrTampered):
		default:
			t.Fatalf("bit flipped at %d (header ends at %d): %v", i, start, err)
		}
		if i >= start && i < len(archive)-(64<<10+16) && errors.Is(err, ErrTruncated) {
			t.Fatalf("bit flipped at %d, in a middle chunk: %v also matches ErrTruncated", i, err)
		}
	}
	for i := range start {
		check(i)
	}
	for i := start; i < len(archive); i += 997 {
		check(i)
	}
	check(len(archive) - 1)
}

// TestTamperedArchiveRecordsAreProvisional: records before a modified
// chunk are returned, then Next fails; the caller must discard them.
func TestTamperedArchiveRecordsAreProvisional(t *testing.T) {
	k := NewRecoveryKey()
	f, archive := multiChunk(t, k)
	start := ageHeaderLen(t, archive)
	archive[start+2*(64<<10+16)+100] ^= 1 // the third chunk
	got, err := readAll(bytes.NewReader(archive), k)
	if !errors.Is(err, ErrTampered) {
		t.Fatal(err)
	}
	if len(got.messages) == 0 || len(got.messages) >= len(f.messages) {
		t.Fatalf("%d of %d messages before the error", len(got.messages), len(f.messages))
	}
}

// TestUnsupportedVersion: an archive of a later format version is refused
// before its header is parsed.
func TestUnsupportedVersion(t *testing.T) {
	k := NewRecoveryKey()
	pt := decrypt(t, newFixture(2, 10).write(t, k), k)
	for _, v := range []uint16{0, 2, 0x0100, 0xffff} {
		mod := bytes.Clone(pt)
		binary.BigEndian.PutUint16(mod[len(magic):], v)
		_, err := readAll(bytes.NewReader(encrypt(t, mod, k)), k)
		if !errors.Is(err, ErrUnsupportedVersion) || !errors.Is(err, wire.ErrUnsupportedVersion) {
			t.Fatalf("version %d: %v", v, err)
		}
	}
}

// TestRecordsDroppedByReencryptionDetected: whoever holds the recipient can
// re-encrypt a prefix of the plaintext as a valid age file; the trailer
// catches the missing records, and a forged trailer's counts are checked.
func TestRecordsDroppedByReencryptionDetected(t *testing.T) {
	k := NewRecoveryKey()
	f := newFixture(20, 30)
	pt := decrypt(t, f.write(t, k), k)
	trailerAt := len(pt) - recordHeaderSize - trailerSize
	// Cut at every record boundary and anywhere else before the trailer.
	for cut := prefixSize; cut < trailerAt; cut++ {
		_, err := readAll(bytes.NewReader(encrypt(t, pt[:cut], k)), k)
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("plaintext cut at %d of %d: %v", cut, len(pt), err)
		}
		if cut > prefixSize+100 {
			cut += 37 // sample the rest; each round trip costs an ML-KEM decapsulation
		}
	}
	// Drop the last message but keep the trailer: the counts disagree.
	lastMsg := trailerAt - messageSize(&f.messages[len(f.messages)-1]) - recordHeaderSize
	mod := append(bytes.Clone(pt[:lastMsg]), pt[trailerAt:]...)
	if _, err := readAll(bytes.NewReader(encrypt(t, mod, k)), k); !errors.Is(err, ErrTampered) {
		t.Fatalf("a message dropped: %v", err)
	}
	// Data after the trailer.
	mod = append(bytes.Clone(pt), 0)
	if _, err := readAll(bytes.NewReader(encrypt(t, mod, k)), k); !errors.Is(err, ErrTampered) {
		t.Fatalf("a byte after the trailer: %v", err)
	}
}

// TestForgedHeaderRefused: a header that names another recovery key, or
// whose account public key is not the seed's, is refused.
func TestForgedHeaderRefused(t *testing.T) {
	k := NewRecoveryKey()
	pt := decrypt(t, newFixture(1, 10).write(t, k), k)
	hdrEnd := prefixSize + recordHeaderSize + headerFixed + len("alice") + len("https://parley.example")
	idAt := hdrEnd - KeyIDSize
	mod := bytes.Clone(pt)
	mod[idAt] ^= 1
	if _, err := readAll(bytes.NewReader(encrypt(t, mod, k)), k); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "another recovery key") {
		t.Fatalf("another key ID: %v", err)
	}
	pubAt := idAt - 8 - identity.AccountKeySize
	mod = bytes.Clone(pt)
	copy(mod[pubAt:], identity.GenerateAccountKey().Public().Bytes())
	if _, err := readAll(bytes.NewReader(encrypt(t, mod, k)), k); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("another account public key: %v", err)
	}
}

func TestNotABackup(t *testing.T) {
	k := NewRecoveryKey()
	for _, pt := range [][]byte{nil, []byte("PARLEYB"), []byte("hello, this is not a backup at all")} {
		_, err := readAll(bytes.NewReader(encrypt(t, pt, k)), k)
		wantErr(t, err, ErrTampered, ErrTruncated)
	}
	if _, err := readAll(strings.NewReader("not even age"), k); !errors.Is(err, ErrTampered) {
		t.Fatalf("not age: %v", err)
	}
}

func TestWriterRefusesBadRecords(t *testing.T) {
	k := NewRecoveryKey()
	f := newFixture(0, 0)
	for name, mutate := range map[string]func(h *Header){
		"no username":    func(h *Header) { h.Username = "" },
		"long username":  func(h *Header) { h.Username = strings.Repeat("a", MaxNameSize+1) },
		"bad UTF-8":      func(h *Header) { h.Username = "\xff" },
		"no server":      func(h *Header) { h.Server = "" },
		"no account key": func(h *Header) { h.AccountKey = nil },
		"before 1970":    func(h *Header) { h.Created = time.Unix(-1, 0) },
	} {
		h := f.header
		mutate(&h)
		if _, err := NewWriter(io.Discard, k, h); err == nil {
			t.Errorf("header with %s accepted", name)
		}
	}
	w, err := NewWriter(io.Discard, k, f.header)
	if err != nil {
		t.Fatal(err)
	}
	ok := Message{Conversation: "bob", Sender: "bob", Sent: time.Unix(1, 0), Received: time.Unix(2, 0)}
	bad := []Message{ok, ok, ok, ok}
	bad[0].Conversation = ""
	bad[1].Sender = strings.Repeat("b", 65)
	bad[2].Sent = time.Time{}
	bad[3].Received = time.Unix(1<<62, 0)
	for i, m := range bad {
		if err := w.AddMessage(&m); err == nil {
			t.Errorf("bad message %d accepted", i)
		}
	}
	big := ok
	big.Body = make([]byte, MaxBodySize+1)
	if err := w.AddMessage(&big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized body: %v", err)
	}
	if err := w.AddSetting(Setting{Name: "x", Value: make([]byte, MaxSettingValueSize+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized setting: %v", err)
	}
	if err := w.AddContact(Contact{Username: "x", Added: time.Unix(1, 0), DeviceList: make([]byte, MaxDeviceListSize+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized device list: %v", err)
	}
	if err := w.AddSetting(Setting{Name: ""}); err == nil {
		t.Error("empty setting name accepted")
	}
	if err := w.AddContact(Contact{Username: "x"}); err == nil {
		t.Error("contact without added time accepted")
	}
	if err := w.AddMessage(&ok); err != nil {
		t.Fatalf("a good message after refused ones: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.AddMessage(&ok); err == nil {
		t.Error("AddMessage after Close succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}

// TestReaderRefusesOversizedRecord: a record length beyond MaxRecordSize
// is refused before it is buffered.
func TestReaderRefusesOversizedRecord(t *testing.T) {
	k := NewRecoveryKey()
	pt := decrypt(t, newFixture(0, 0).write(t, k), k)
	trailerAt := len(pt) - recordHeaderSize - trailerSize
	mod := append(bytes.Clone(pt[:trailerAt]), byte(KindMessage), 0x10, 0x00, 0x01)
	_, err := readAll(bytes.NewReader(encrypt(t, mod, k)), k)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
}

// TestReaderSlicesDoNotAlias: bodies returned by Next stay intact after
// later records are read, and appending to one does not touch another.
func TestReaderSlicesDoNotAlias(t *testing.T) {
	k := NewRecoveryKey()
	f := newFixture(2000, 100)
	got, err := readAll(bytes.NewReader(f.write(t, k)), k)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(got.messages[0].Body, 'X', 'Y', 'Z')
	if d := f.diff(got); d != "" {
		t.Fatal(d)
	}
}

var errNetwork = errors.New("connection reset")

// failingReader returns errNetwork after n bytes.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errNetwork
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestReadErrorsAreNotTampering: an input that fails (a dropped download)
// is reported as its own error, not as a damaged archive.
func TestReadErrorsAreNotTampering(t *testing.T) {
	k := NewRecoveryKey()
	_, archive := multiChunk(t, k)
	for _, n := range []int{0, 100, ageHeaderLen(t, archive) + 10, len(archive) / 2, len(archive) - 1} {
		_, err := readAll(&failingReader{r: bytes.NewReader(archive), n: n}, k)
		if !errors.Is(err, errNetwork) || errors.Is(err, ErrTampered) || errors.Is(err, ErrWrongRecoveryKey) {
			t.Fatalf("input failing after %d bytes: %v", n, err)
		}
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		return 0, errNetwork
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWriterErrorIsSticky: a failed write to dst fails the archive; the
// Writer refuses everything after it.
func TestWriterErrorIsSticky(t *testing.T) {
	k := NewRecoveryKey()
	f := newFixture(2000, 200)
	w, err := NewWriter(&failingWriter{n: 100 << 10}, k, f.header)
	if err != nil {
		t.Fatal(err)
	}
	var first error
	for i := range f.messages {
		if first = w.AddMessage(&f.messages[i]); first != nil {
			break
		}
	}
	if !errors.Is(first, errNetwork) {
		t.Fatalf("write failure: %v", first)
	}
	if err := w.AddMessage(&f.messages[0]); !errors.Is(err, errNetwork) {
		t.Fatalf("after the failure: %v", err)
	}
	if err := w.Close(); !errors.Is(err, errNetwork) {
		t.Fatalf("Close after the failure: %v", err)
	}
}
