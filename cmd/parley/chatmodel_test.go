package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
)

// The chat model is driven here the way bubbletea drives it — key presses,
// window sizes, arriving events, finished sends — with no terminal.

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fakeSend records what the model sends and answers like the SDK.
type fakeSend struct {
	texts []string
	err   error
}

func (f *fakeSend) send(text string) (*client.Message, error) {
	f.texts = append(f.texts, text)
	if f.err != nil {
		return nil, f.err
	}
	return &client.Message{ID: idOf(len(f.texts)), Conversation: "bob", From: "alice", Outgoing: true, Sent: t0, Text: text, State: 2 /* sent */}, nil
}

func idOf(n int) (id [16]byte) {
	id[0], id[15] = 0xaa, byte(n)
	return id
}

func incoming(n int, from, text string) eventMsg {
	m := &client.Message{ID: idOf(100 + n), Conversation: from, From: from, Sent: t0, Text: text, State: 5 /* received */}
	return eventMsg{Kind: client.EventMessage, Message: m, From: from}
}

func newTestChat(t *testing.T, history ...*client.Message) (*chatModel, *fakeSend) {
	t.Helper()
	f := &fakeSend{}
	m := newChatModel("alice", "bob", history, f.send)
	m.now = func() time.Time { return t0 }
	update(t, m, tea.WindowSizeMsg{Width: 60, Height: 12})
	return m, f
}

// update feeds one message to the model and returns the command it gave.
func update(t *testing.T, m *chatModel, msg tea.Msg) tea.Cmd {
	t.Helper()
	next, cmd := m.Update(msg)
	if next != m {
		t.Fatalf("Update returned another model")
	}
	return cmd
}

// typeText types s into the input line, key by key.
func typeText(t *testing.T, m *chatModel, s string) {
	t.Helper()
	for _, r := range s {
		update(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

func key(k tea.KeyType) tea.KeyMsg { return tea.KeyMsg{Type: k} }

func TestChatSendShowsDeliveryState(t *testing.T) {
	m, f := newTestChat(t)
	typeText(t, m, "hello bob")
	if got := m.input.Value(); got != "hello bob" {
		t.Fatalf("input = %q", got)
	}
	cmd := update(t, m, key(tea.KeyEnter))
	if cmd == nil {
		t.Fatal("enter gave no send command")
	}
	if m.input.Value() != "" {
		t.Errorf("input not cleared: %q", m.input.Value())
	}
	if v := m.View(); !strings.Contains(v, "alice: hello bob [sending]") {
		t.Fatalf("before the send finishes, the view lacks the pending line:\n%s", v)
	}
	if len(f.texts) != 0 {
		t.Fatal("the model sent by itself instead of through the command")
	}
	res := cmd() // what bubbletea does in the background
	if len(f.texts) != 1 || f.texts[0] != "hello bob" {
		t.Fatalf("sent %q", f.texts)
	}
	update(t, m, res)
	v := m.View()
	if !strings.Contains(v, "alice: hello bob [sent]") || strings.Contains(v, "sending") {
		t.Fatalf("after the send, the view is:\n%s", v)
	}
}

func TestChatEmptyInputSendsNothing(t *testing.T) {
	m, _ := newTestChat(t)
	typeText(t, m, "   ")
	if cmd := update(t, m, key(tea.KeyEnter)); cmd != nil {
		t.Fatal("blank input produced a send")
	}
	if len(m.entries) != 0 {
		t.Fatalf("entries: %+v", m.entries)
	}
}

func TestChatSendFailure(t *testing.T) {
	m, f := newTestChat(t)
	f.err = errors.New("client: send: cannot reach the server")
	typeText(t, m, "are you there")
	update(t, m, update(t, m, key(tea.KeyEnter))())
	v := m.View()
	if !strings.Contains(v, "are you there [failed]") || !strings.Contains(v, "not sent: send: cannot reach the server") {
		t.Fatalf("view after a failed send:\n%s", v)
	}
}

// TestChatSecurityNoticeSticks: a security error stays on the status line;
// later chatter does not push it away.
func TestChatSecurityNoticeSticks(t *testing.T) {
	m, f := newTestChat(t)
	f.err = &client.SecurityError{What: `device list of "bob"`, Err: errors.New("account key changed")}
	typeText(t, m, "secret")
	update(t, m, update(t, m, key(tea.KeyEnter))())
	update(t, m, incoming(1, "carol", "hi"))
	v := m.View()
	if !strings.Contains(v, "SECURITY: the server may be lying") {
		t.Fatalf("no security notice:\n%s", v)
	}
	if strings.Contains(v, "new message from carol") {
		t.Fatalf("the security notice was replaced:\n%s", v)
	}
}

func TestChatArrivals(t *testing.T) {
	m, _ := newTestChat(t)
	update(t, m, incoming(1, "bob", "hi alice"))
	update(t, m, incoming(1, "bob", "hi alice")) // a redelivery
	update(t, m, incoming(2, "carol", "psst"))
	update(t, m, incoming(3, "carol", "psst again"))
	v := m.View()
	if strings.Count(v, "bob: hi alice") != 1 {
		t.Fatalf("bob's message shown %d times:\n%s", strings.Count(v, "bob: hi alice"), v)
	}
	if strings.Contains(v, "psst") {
		t.Fatalf("another conversation's message is in this one:\n%s", v)
	}
	if !strings.Contains(v, "new message from carol (2 unread; parley chat carol)") {
		t.Fatalf("no notice of carol's messages:\n%s", v)
	}
}

// TestChatOwnCopyFromOtherDevice: a message this account sent from another
// device shows as outgoing in the conversation.
func TestChatOwnCopyFromOtherDevice(t *testing.T) {
	m, _ := newTestChat(t)
	msg := &client.Message{ID: idOf(7), Conversation: "bob", From: "alice", Outgoing: true, Sent: t0, Text: "from my phone", State: 2}
	update(t, m, eventMsg{Kind: client.EventMessage, Message: msg, From: "alice"})
	if v := m.View(); !strings.Contains(v, "alice: from my phone [sent]") {
		t.Fatalf("view:\n%s", v)
	}
}

func TestChatWarnings(t *testing.T) {
	m, _ := newTestChat(t)
	update(t, m, eventMsg{Kind: client.EventUndecryptable, From: "bob", Err: errors.New("ratchet: bad MAC")})
	if v := m.View(); !strings.Contains(v, "could not decrypt a message from bob: ratchet: bad MAC") {
		t.Fatalf("view:\n%s", v)
	}
	update(t, m, eventMsg{Kind: client.EventSessionReset, From: "bob"})
	if v := m.View(); !strings.Contains(v, "bob reset its session") {
		t.Fatalf("view:\n%s", v)
	}
	update(t, m, receiveEndedMsg{errors.New("client: receive: the server closed the stream")})
	if v := m.View(); !strings.Contains(v, "receiving stopped: receive: the server closed the stream") {
		t.Fatalf("view:\n%s", v)
	}
}

// TestChatNoTerminalInjection: a peer's escape sequences and bidi
// overrides are shown as text, never passed to the terminal.
func TestChatNoTerminalInjection(t *testing.T) {
	m, _ := newTestChat(t)
	update(t, m, incoming(1, "bob", "\x1b]0;pwned\x07\x1b[2Jgone\u202eexe.txt"))
	v := m.View()
	if strings.ContainsAny(v, "\x07\u202e") || strings.Contains(v, "\x1b]0;") || strings.Contains(v, "\x1b[2J") {
		t.Fatalf("control sequences reached the view: %q", v)
	}
	if !strings.Contains(v, `\x1b]0;pwned\x07\x1b[2Jgone\u202eexe.txt`) {
		t.Fatalf("the text is not shown escaped: %q", v)
	}
}

func TestChatQuitKeys(t *testing.T) {
	for _, k := range []tea.KeyType{tea.KeyCtrlC, tea.KeyEsc, tea.KeyCtrlD} {
		m, _ := newTestChat(t)
		cmd := update(t, m, key(k))
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s does not quit", k)
		}
	}
}

func TestChatHistoryAndScrolling(t *testing.T) {
	var history []*client.Message
	for i := range 30 {
		from, out := "bob", false
		if i%2 == 1 {
			from, out = "alice", true
		}
		history = append(history, &client.Message{ID: idOf(i + 1), Conversation: "bob", From: from, Outgoing: out,
			Sent: t0.Add(time.Duration(i) * time.Minute), Text: fmt.Sprintf("message %02d", i), State: 2})
	}
	m, _ := newTestChat(t, history...)
	v := m.View()
	// 12 rows: header, 9 rows of history, status, input. The newest show.
	if lines := strings.Split(v, "\n"); len(lines) != 12 {
		t.Fatalf("view has %d lines, want 12:\n%s", len(lines), v)
	}
	if !strings.Contains(v, "message 29") || strings.Contains(v, "message 00") {
		t.Fatalf("not at the bottom:\n%s", v)
	}
	update(t, m, key(tea.KeyPgUp))
	if v := m.View(); strings.Contains(v, "message 29") {
		t.Fatalf("pgup did not scroll:\n%s", v)
	}
	// Scrolled up, a new arrival does not yank the view down.
	update(t, m, incoming(1, "bob", "brand new"))
	if v := m.View(); strings.Contains(v, "brand new") {
		t.Fatalf("an arrival jumped to the bottom while reading history:\n%s", v)
	}
	update(t, m, key(tea.KeyPgDown))
	update(t, m, key(tea.KeyPgDown))
	if v := m.View(); !strings.Contains(v, "brand new") {
		t.Fatalf("pgdn did not come back:\n%s", v)
	}
	// At the bottom, arrivals stay in view.
	update(t, m, incoming(2, "bob", "newest"))
	if v := m.View(); !strings.Contains(v, "newest") {
		t.Fatalf("an arrival at the bottom is not shown:\n%s", v)
	}
}

func TestChatWrapsLongLines(t *testing.T) {
	m, _ := newTestChat(t)
	update(t, m, incoming(1, "bob", strings.Repeat("word ", 40)))
	for _, line := range strings.Split(m.View(), "\n") {
		if n := len([]rune(line)); n > 60 {
			t.Errorf("line of %d runes in a 60-column window: %q", n, line)
		}
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"two\nlines\ttab":  "two\nlines\ttab",
		"\x1b[31mred":      `\x1b[31mred`,
		"bell\x07":         `bell\x07`,
		"del\x7f":          `del\x7f`,
		"c1\u009b31m":      `c1\x9b31m`,
		"rlo\u202eexe.txt": `rlo\u202eexe.txt`,
		"isolate\u2066x":   `isolate\u2066x`,
		"ünïcödé and 日本語":  "ünïcödé and 日本語",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGroupSafetyNumber(t *testing.T) {
	n := strings.Repeat("0123456789", 3) + " " + strings.Repeat("9876543210", 3)
	want := "01234 56789 01234 56789\n01234 56789 98765 43210\n98765 43210 98765 43210"
	if got := groupSafetyNumber(n); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// TestChatKeyTransparencyAlerts: an own-account alert and a fork take the
// status line as security notices, which chatter does not replace.
func TestChatKeyTransparencyAlerts(t *testing.T) {
	m, _ := newTestChat(t)
	update(t, m, eventMsg{Kind: client.EventLogFork, From: "bob", Err: errors.New("client: security error: forked log")})
	if v := m.View(); !strings.Contains(v, "SECURITY: the server may be lying: the key-transparency log") {
		t.Fatalf("view:\n%s", v)
	}
	update(t, m, eventMsg{Kind: client.EventSessionReset, From: "bob"})
	if v := m.View(); strings.Contains(v, "reset its session") {
		t.Fatalf("a security notice was replaced:\n%s", v)
	}
	update(t, m, eventMsg{Kind: client.EventKeyTransparencyAlert, From: "alice", Err: errors.New("client: security error: unexpected version")})
	if v := m.View(); !strings.Contains(v, "SECURITY: the server may be lying: key transparency alert") {
		t.Fatalf("view:\n%s", v)
	}
}
