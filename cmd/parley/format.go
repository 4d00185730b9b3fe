package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/parleyim/parley/client"
)

// timeLayout is how times are shown to people, in local time.
const timeLayout = "2006-01-02 15:04:05"

// sanitize makes text from a peer safe to print on a terminal: control
// characters (escape sequences could move the cursor, rewrite earlier
// lines or retitle the window) and bidirectional overrides (which could
// make a line read differently from what it contains) are shown as
// escapes. Newlines and tabs stay.
func sanitize(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !unsafeRune(r) {
			b.WriteRune(r)
		} else if r < 0x100 {
			fmt.Fprintf(&b, `\x%02x`, r)
		} else {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// indent puts continuation lines of a multi-line message under its first.
func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// messageLine is a message as one human-readable entry:
//
//	2025-06-01 12:00:00 alice: hello bob
//	2025-06-01 12:00:05 alice -> bob: a copy sent from another device (sent)	2025-06-01 12:00:09 -- bob added a device ("tablet")
func messageLine(m *client.Message, showState bool) string {
	if m.System {
		// Not said by anyone: no "name:", so that no one can type it.
		return fmt.Sprintf("%s -- %s", m.Sent.Local().Format(timeLayout), sanitize(m.Text))
	}
	who := m.From + ":"
	if m.Outgoing {
		who = m.From + " -> " + m.Conversation + ":"
	}
	line := fmt.Sprintf("%s %s %s", m.Sent.Local().Format(timeLayout), who, indent(sanitize(m.Text), "    "))
	if showState && m.Outgoing {
		line += " (" + m.State.String() + ")"
	}
	return line
}

// jsonMessage is a message in --json output.
type jsonMessage struct {
	ID           string    `json:"id"`
	Conversation string    `json:"conversation"`
	From         string    `json:"from"`
	FromDevice   string    `json:"from_device"`
	Outgoing     bool      `json:"outgoing"`
	Sent         time.Time `json:"sent"`
	Received     time.Time `json:"received"`
	Text         string    `json:"text"`
	State        string    `json:"state"`
}

func toJSONMessage(m *client.Message) jsonMessage {
	return jsonMessage{
		ID: hex.EncodeToString(m.ID[:]), Conversation: m.Conversation, From: m.From,
		FromDevice: m.FromDevice.String(), Outgoing: m.Outgoing, Sent: m.Sent.UTC(),
		Received: m.Received.UTC(), Text: m.Text, State: m.State.String(),
	}
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// safetyDigits returns the digits of a safety number, whatever the SDK
// put between them.
func safetyDigits(n string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, n)
}

// groupSafetyNumber lays out a safety number as people compare it: groups
// of five digits, four groups a line.
func groupSafetyNumber(n string) string {
	d := safetyDigits(n)
	var b strings.Builder
	for i := 0; i < len(d); i += 5 {
		switch {
		case i == 0:
		case i%20 == 0:
			b.WriteByte('\n')
		default:
			b.WriteByte(' ')
		}
		b.WriteString(d[i:min(i+5, len(d))])
	}
	return b.String()
}
