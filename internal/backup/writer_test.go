package backup

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestPutName checks the Writer's copy-and-check of names against copy and
// utf8.ValidString at every length a name may have, with a non-ASCII byte
// (or none) at every position, and that it writes nothing past the name.
func TestPutName(t *testing.T) {
	for n := 0; n <= MaxNameSize; n++ {
		for bad := -1; bad < n; bad++ {
			b := []byte(strings.Repeat("x", n))
			for i := range b {
				b[i] = byte('a' + i%26)
			}
			if bad >= 0 {
				b[bad] = 0x80 | byte(bad)
			}
			s := string(b)
			p := bytes.Repeat([]byte{0xee}, n+8)
			ascii := putName(p, s)
			if string(p[:n]) != s {
				t.Fatalf("length %d, non-ASCII at %d: copied %q", n, bad, p[:n])
			}
			if !bytes.Equal(p[n:], bytes.Repeat([]byte{0xee}, 8)) {
				t.Fatalf("length %d: wrote past the name", n)
			}
			if ascii != (bad < 0) {
				t.Fatalf("length %d, non-ASCII at %d: ascii = %v", n, bad, ascii)
			}
		}
	}
}

// TestWriterRefusesNamesThatAreNotUTF8: a conversation or sender name that
// is not UTF-8, short or long, is refused with an error naming it, and the
// refused record leaves nothing in the archive; valid non-ASCII names are
// kept as they are.
func TestWriterRefusesNamesThatAreNotUTF8(t *testing.T) {
	k := NewRecoveryKey()
	f := newFixture(0, 0)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, k, f.header)
	if err != nil {
		t.Fatal(err)
	}
	good := Message{Sent: time.Unix(1, 0), Received: time.Unix(2, 0), Body: []byte("hi")}
	var want []Message
	for _, name := range []string{"\xff", "bo\xe2b", "carol\xc3", "\xed\xa0\x80surrogate", strings.Repeat("x", 63) + "\xff"} {
		for _, which := range []string{"conversation", "sender"} {
			m := good
			m.Conversation, m.Sender = "bob", "bob"
			if which == "conversation" {
				m.Conversation = name
			} else {
				m.Sender = name
			}
			err := w.AddMessage(&m)
			if err == nil || !strings.Contains(err.Error(), which+" is not UTF-8") {
				t.Errorf("%s %q: %v", which, name, err)
			}
		}
	}
	for _, name := range []string{"zoë", "日本語の名前", "dave ✓", strings.Repeat("é", 32), "b"} {
		if !utf8.ValidString(name) || len(name) > MaxNameSize {
			t.Fatal(name)
		}
		m := good
		m.Conversation, m.Sender = name, name
		m.ID[0] = byte(len(want))
		if err := w.AddMessage(&m); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		want = append(want, m)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(bytes.NewReader(buf.Bytes()), k)
	if err != nil {
		t.Fatal(err)
	}
	f.contacts, f.settings, f.messages = nil, nil, want
	if d := f.diff(got); d != "" {
		t.Fatal(d)
	}
}

// TestMessageCheckBoundaries: the Writer's one-test fast path for a
// message's names and times accepts exactly what the field checks accept,
// at each limit and on either side of it.
func TestMessageCheckBoundaries(t *testing.T) {
	ok := Message{Conversation: "bob", Sender: "bob", Sent: time.Unix(1, 0), Received: time.Unix(2, 0)}
	last := time.Unix(maxUnixSeconds-1, 999_999_999)
	for _, c := range []struct {
		name   string
		mutate func(m *Message)
		valid  bool
	}{
		{"as is", func(*Message) {}, true},
		{"conversation of MaxNameSize", func(m *Message) { m.Conversation = strings.Repeat("c", MaxNameSize) }, true},
		{"conversation too long", func(m *Message) { m.Conversation = strings.Repeat("c", MaxNameSize+1) }, false},
		{"no conversation", func(m *Message) { m.Conversation = "" }, false},
		{"sender of MaxNameSize", func(m *Message) { m.Sender = strings.Repeat("s", MaxNameSize) }, true},
		{"sender too long", func(m *Message) { m.Sender = strings.Repeat("s", MaxNameSize+1) }, false},
		{"no sender", func(m *Message) { m.Sender = "" }, false},
		{"sent at 1970", func(m *Message) { m.Sent = time.Unix(0, 0) }, true},
		{"sent before 1970", func(m *Message) { m.Sent = time.Unix(0, -1) }, false},
		{"sent at the last second", func(m *Message) { m.Sent = last }, true},
		{"sent after it", func(m *Message) { m.Sent = last.Add(1) }, false},
		{"received before 1970", func(m *Message) { m.Received = time.Unix(-1, 0) }, false},
		{"received at the last second", func(m *Message) { m.Received = last }, true},
		{"received after it", func(m *Message) { m.Received = time.Unix(maxUnixSeconds, 0) }, false},
		{"received in year 1", func(m *Message) { m.Received = time.Time{} }, false},
	} {
		m := ok
		c.mutate(&m)
		slow := checkName("conversation", m.Conversation, MaxNameSize) + checkName("sender", m.Sender, MaxNameSize) +
			checkTime("sent", m.Sent) + checkTime("received", m.Received)
		if (slow == "") != c.valid {
			t.Fatalf("%s: the field checks say %q", c.name, slow)
		}
		if got := m.checkShape(); (got == "") != c.valid {
			t.Errorf("%s: checkShape says %q", c.name, got)
		}
	}
}
