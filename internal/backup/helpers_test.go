package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/parleyim/parley/internal/identity"
)

// fixture is an archive's contents, written by write and compared by
// readAll.
type fixture struct {
	header   Header
	contacts []Contact
	settings []Setting
	messages []Message
}

var testAccountKey = identity.GenerateAccountKey()

func newFixture(messages, bodySize int) *fixture {
	base := time.Unix(1_790_000_000, 123_456_789).UTC()
	f := &fixture{header: Header{
		Username: "alice", Server: "https://parley.example", AccountKey: testAccountKey, Created: base,
	}}
	for i, name := range []string{"bob", "carol", "dave ✓"} {
		f.contacts = append(f.contacts, Contact{
			Username: name, DeviceList: bytes.Repeat([]byte{byte(i + 1)}, 100*(i+1)),
			Verified: i%2 == 0, Added: base.Add(time.Duration(i) * time.Hour),
		})
	}
	f.settings = []Setting{{Name: "backup.auto", Value: []byte("daily")}, {Name: "empty", Value: nil}}
	for i := range messages {
		conv := f.contacts[i%len(f.contacts)].Username
		m := Message{
			Conversation: conv, Sender: conv, Outgoing: i%3 == 0, State: uint8(1 + i%7),
			Sent: base.Add(time.Duration(i) * time.Second), Received: base.Add(time.Duration(i)*time.Second + time.Millisecond),
			Body: bytes.Repeat([]byte{byte('a' + i%26)}, bodySize+i%7),
		}
		if m.Outgoing {
			m.Sender = "alice"
		}
		m.ID[0], m.ID[1] = byte(i>>8), byte(i)
		m.SenderDevice[15] = byte(i % 3)
		if i == 1 {
			m.Body = nil
		}
		f.messages = append(f.messages, m)
	}
	return f
}

// write writes f as an archive for k, the records interleaved as a real
// export might.
func (f *fixture) write(t testing.TB, k RecoveryKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, k, f.header)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range f.contacts {
		if err := w.AddContact(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range f.settings {
		if err := w.AddSetting(s); err != nil {
			t.Fatal(err)
		}
	}
	for i := range f.messages {
		if err := w.AddMessage(&f.messages[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads a whole archive, returning the first error (nil only if
// Next ended with io.EOF).
func readAll(src io.Reader, k RecoveryKey) (*fixture, error) {
	r, err := NewReader(src, k)
	if err != nil {
		return nil, err
	}
	return drain(r)
}

func drain(r *Reader) (*fixture, error) {
	f := &fixture{header: r.Header()}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return f, nil
		}
		if err != nil {
			return f, err
		}
		switch rec.Kind {
		case KindContact:
			f.contacts = append(f.contacts, rec.Contact)
		case KindSetting:
			f.settings = append(f.settings, rec.Setting)
		case KindMessage:
			f.messages = append(f.messages, rec.Message)
		default:
			return f, fmt.Errorf("unexpected kind %v", rec.Kind)
		}
	}
}

// equal reports how got differs from want, or "".
func (want *fixture) diff(got *fixture) string {
	h, g := want.header, got.header
	if g.Username != h.Username || g.Server != h.Server || !g.Created.Equal(h.Created) ||
		g.AccountKey == nil || !g.AccountKey.Public().Equal(h.AccountKey.Public()) ||
		!bytes.Equal(g.AccountKey.Seed(), h.AccountKey.Seed()) || g.Version != FormatVersion {
		return fmt.Sprintf("header %+v, want %+v", g, h)
	}
	if len(got.contacts) != len(want.contacts) || len(got.settings) != len(want.settings) || len(got.messages) != len(want.messages) {
		return fmt.Sprintf("%d/%d/%d records, want %d/%d/%d", len(got.contacts), len(got.settings), len(got.messages),
			len(want.contacts), len(want.settings), len(want.messages))
	}
	for i, c := range want.contacts {
		o := got.contacts[i]
		if o.Username != c.Username || !bytes.Equal(o.DeviceList, c.DeviceList) || o.Verified != c.Verified || !o.Added.Equal(c.Added) {
			return fmt.Sprintf("contact %d: %+v, want %+v", i, o, c)
		}
	}
	for i, s := range want.settings {
		o := got.settings[i]
		if o.Name != s.Name || !bytes.Equal(o.Value, s.Value) {
			return fmt.Sprintf("setting %d: %+v, want %+v", i, o, s)
		}
	}
	for i, m := range want.messages {
		o := got.messages[i]
		if o.ID != m.ID || o.Conversation != m.Conversation || o.Sender != m.Sender || o.SenderDevice != m.SenderDevice ||
			o.Outgoing != m.Outgoing || !o.Sent.Equal(m.Sent) || !o.Received.Equal(m.Received) ||
			!bytes.Equal(o.Body, m.Body) || o.State != m.State {
			return fmt.Sprintf("message %d: %+v, want %+v", i, o, m)
		}
	}
	return ""
}

// decrypt returns an archive's plaintext, decrypted by age alone.
func decrypt(t testing.TB, archive []byte, k RecoveryKey) []byte {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(archive), k.AgeIdentity())
	if err != nil {
		t.Fatal(err)
	}
	pt, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

// encrypt encrypts any plaintext to k's recipient, as a forger who knows
// the recipient (or a buggy writer) could.
func encrypt(t testing.TB, plaintext []byte, k RecoveryKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, k.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func wantErr(t testing.TB, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	t.Fatalf("error %v, want one of %v", err, targets)
}
