package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
)

// The chat UI is a bubbletea model: everything that happens — a key
// press, a message arriving, a send finishing — is a tea.Msg, and Update
// is a function of the model and the message. The model never touches the
// network itself: sends go through the injected send function, run as a
// tea.Cmd, and arrivals come from the receive loop in chat.go. So the
// tests drive Update with synthetic messages and no terminal.

// Messages the chat model handles besides bubbletea's own.
type (
	// eventMsg is an event from the background receive stream.
	eventMsg client.Event
	// sentMsg reports the end of a send started by the model.
	sentMsg struct {
		local int // the entry it belongs to
		msg   *client.Message
		err   error
	}
	// receiveEndedMsg says the receive stream stopped for good.
	receiveEndedMsg struct{ err error }
)

// Chat layout: a header line, the scrolling history, a status line and the
// input line.
const chatChromeLines = 3

// chatEntry is one line of the conversation on screen.
type chatEntry struct {
	local    int      // non-zero for this session's own sends, to match sentMsg
	id       [16]byte // zero while sending
	from     string
	outgoing bool
	at       time.Time
	text     string
	state    string // "sending", "sent", "received", "failed: ..."
}

type chatModel struct {
	self, peer string
	send       func(text string) (*client.Message, error)
	now        func() time.Time

	entries   []chatEntry
	nextLocal int
	status    string // the latest notice: arrivals elsewhere, warnings
	security  bool   // a security problem was seen; the status says so
	unread    map[string]int

	input  textinput.Model
	view   viewport.Model
	width  int
	height int
}

// newChatModel returns the chat with peer, showing history (oldest first).
func newChatModel(self, peer string, history []*client.Message, send func(string) (*client.Message, error)) *chatModel {
	in := textinput.New()
	in.Placeholder = "type a message, enter to send, esc to quit"
	in.Prompt = "> "
	in.CharLimit = 0
	in.Focus()
	m := &chatModel{
		self: self, peer: peer, send: send, now: time.Now,
		unread: map[string]int{},
		input:  in,
		view:   viewport.New(80, 24-chatChromeLines),
		width:  80, height: 24,
	}
	for _, h := range history {
		m.entries = append(m.entries, entryOf(h))
	}
	m.refresh()
	return m
}

func entryOf(msg *client.Message) chatEntry {
	return chatEntry{id: msg.ID, from: msg.From, outgoing: msg.Outgoing, at: msg.Sent, text: msg.Text, state: msg.State.String()}
}

func (m *chatModel) Init() tea.Cmd { return textinput.Blink }

func (m *chatModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		bottom := m.view.AtBottom()
		m.width, m.height = msg.Width, msg.Height
		m.view.Width = max(msg.Width, 1)
		m.view.Height = max(msg.Height-chatChromeLines, 1)
		m.input.Width = max(msg.Width-len(m.input.Prompt)-1, 1)
		m.render(bottom)
		return m, nil
	case tea.KeyMsg:
		return m.key(msg)
	case sentMsg:
		m.sent(msg)
		return m, nil
	case eventMsg:
		m.event(client.Event(msg))
		return m, nil
	case receiveEndedMsg:
		if msg.err != nil {
			m.notice(fmt.Sprintf("receiving stopped: %s", errorText(msg.err)), errors.Is(msg.err, client.ErrSecurity))
		}
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

func (m *chatModel) key(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch k.Type {
	case tea.KeyCtrlC, tea.KeyEsc, tea.KeyCtrlD:
		return m, tea.Quit
	case tea.KeyEnter:
		return m, m.submit()
	case tea.KeyPgUp, tea.KeyPgDown, tea.KeyUp, tea.KeyDown:
		var cmd tea.Cmd
		m.view, cmd = m.view.Update(k)
		return m, cmd
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return m, cmd
}

// submit starts sending the input line and shows it as "sending".
func (m *chatModel) submit() tea.Cmd {
	text := strings.TrimSpace(m.input.Value())
	if text == "" {
		return nil
	}
	m.input.Reset()
	m.nextLocal++
	local := m.nextLocal
	m.entries = append(m.entries, chatEntry{local: local, from: m.self, outgoing: true, at: m.now(), text: text, state: "sending"})
	m.refresh()
	send := m.send
	return func() tea.Msg {
		msg, err := send(text)
		return sentMsg{local: local, msg: msg, err: err}
	}
}

func (m *chatModel) sent(s sentMsg) {
	for i := range m.entries {
		e := &m.entries[i]
		if e.local != s.local {
			continue
		}
		if s.err != nil {
			e.state = "failed"
			m.notice("not sent: "+errorText(s.err), errors.Is(s.err, client.ErrSecurity))
		} else {
			e.id, e.at, e.state = s.msg.ID, s.msg.Sent, s.msg.State.String()
		}
	}
	m.refresh()
}

func (m *chatModel) event(e client.Event) {
	switch e.Kind {
	case client.EventMessage:
		msg := e.Message
		if msg.Conversation != m.peer {
			m.unread[msg.Conversation]++
			m.notice(fmt.Sprintf("new message from %s (%d unread; parley chat %s)", msg.Conversation, m.unread[msg.Conversation], msg.Conversation), false)
			return
		}
		for _, old := range m.entries {
			if old.id == msg.ID {
				return // already shown
			}
		}
		m.entries = append(m.entries, entryOf(msg))
		m.refresh()
	case client.EventUndecryptable:
		m.notice(fmt.Sprintf("could not decrypt a message from %s: %s", e.From, errorText(e.Err)), errors.Is(e.Err, client.ErrSecurity))
	case client.EventSessionReset:
		m.notice(fmt.Sprintf("%s reset its session with this device; a message may have been lost", e.From), false)
	case client.EventKeyTransparencyAlert:
		m.notice("key transparency alert on your own account: "+errorText(e.Err)+" (run 'parley receive' for details)", true)
	case client.EventLogFork:
		m.notice(fmt.Sprintf("the key-transparency log showed %s a different history: %s", e.From, errorText(e.Err)), true)
	}
}

// notice sets the status line. A security notice stays until another
// security notice replaces it: it must not scroll away under chatter.
func (m *chatModel) notice(s string, security bool) {
	if security {
		m.security = true
		m.status = "SECURITY: the server may be lying: " + sanitize(s)
		return
	}
	if !m.security {
		m.status = sanitize(s)
	}
}

// refresh re-renders the history into the viewport, keeping it at the
// bottom if it was there: reading older messages is not interrupted by new
// ones, and following the conversation needs no scrolling.
func (m *chatModel) refresh() { m.render(m.view.AtBottom()) }

func (m *chatModel) render(bottom bool) {
	var b strings.Builder
	for i, e := range m.entries {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(m.renderEntry(e))
	}
	m.view.SetContent(b.String())
	if bottom {
		m.view.GotoBottom()
	}
}

func (m *chatModel) renderEntry(e chatEntry) string {
	head := fmt.Sprintf("%s %s: ", e.at.Local().Format("Jan 2 15:04"), e.from)
	line := head + sanitize(strings.ReplaceAll(e.text, "\t", "    "))
	if e.outgoing {
		line += " [" + e.state + "]"
	}
	return wrap(line, m.view.Width, len(head))
}

func (m *chatModel) View() string {
	header := fmt.Sprintf("parley chat: %s with %s (esc to quit, pgup/pgdn to scroll)", m.self, m.peer)
	return clip(header, m.width) + "\n" + m.view.View() + "\n" + clip(m.status, m.width) + "\n" + m.input.View()
}

// wrap breaks s into lines of at most width runes (rune count stands in
// for display width), indenting continuation lines.
func wrap(s string, width, hang int) string {
	if width <= hang+1 {
		return s
	}
	var out strings.Builder
	for i, para := range strings.Split(s, "\n") {
		if i > 0 {
			out.WriteByte('\n')
			para = strings.Repeat(" ", hang) + para
		}
		r := []rune(para)
		for len(r) > width {
			out.WriteString(string(r[:width]))
			out.WriteByte('\n')
			r = append([]rune(strings.Repeat(" ", hang)), r[width:]...)
		}
		out.WriteString(string(r))
	}
	return out.String()
}

// clip cuts s to width runes.
func clip(s string, width int) string {
	r := []rune(s)
	if width > 0 && len(r) > width {
		return string(r[:width])
	}
	return s
}
