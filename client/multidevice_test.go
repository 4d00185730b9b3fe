package client

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/identity"
)

// secondDevice adds a device to c's account (as linking will, after it
// carried the account key over) and returns a client for it.
func (ts *testServer) secondDevice(t *testing.T, c *Client, name string) *Client {
	t.Helper()
	ctx := context.Background()
	dev := identity.GenerateDeviceKeys()
	if err := c.addDevice(ctx, dev.Public(), name, nil); err != nil {
		t.Fatalf("adding %s: %v", name, err)
	}
	account, err := identity.NewAccountKey(c.account.Seed())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := joinAccount(ctx, t.TempDir(), ts.url, c.Username(), account, dev, Options{Insecure: true, HTTPClient: ts.hs.Client()})
	if err != nil {
		t.Fatalf("joining %s: %v", name, err)
	}
	t.Cleanup(func() { c2.Close() })
	return c2
}

// TestTwoUsersTwoDevicesEach: every message reaches every device of the
// recipient and every other device of the sender exactly once, in order per
// sender; each device's history shows the whole conversation.
func TestTwoUsersTwoDevicesEach(t *testing.T) {
	ts := newTestServer(t)
	alice1, bob1 := ts.register(t, "alice"), ts.register(t, "bob")
	alice2, bob2 := ts.secondDevice(t, alice1, "alice-phone"), ts.secondDevice(t, bob1, "bob-phone")
	devices := map[string][]*Client{"alice": {alice1, alice2}, "bob": {bob1, bob2}}
	ctx := context.Background()

	// Interleaved sends from all four devices.
	type sent struct{ from, to, text string }
	var all []sent
	for round := range 3 {
		for _, from := range []*Client{alice1, bob2, alice2, bob1} {
			to := "bob"
			if from.Username() == "bob" {
				to = "alice"
			}
			text := fmt.Sprintf("%s/%s round %d", from.Username(), from.DeviceID().String()[:6], round)
			if _, err := from.Send(ctx, to, text); err != nil {
				t.Fatalf("%s sends: %v", text, err)
			}
			all = append(all, sent{from.Username(), to, text})
		}
	}
	for _, user := range []string{"alice", "bob"} {
		for _, dev := range devices[user] {
			got := drain(t, dev)
			// Every message of the conversation arrives except those this
			// device sent itself; exactly once, in sending order.
			var want []string
			for _, s := range all {
				fromThisDevice := false
				for _, d := range devices[s.from] {
					if d == dev && containsDevice(s.text, dev) {
						fromThisDevice = true
					}
				}
				if !fromThisDevice {
					want = append(want, s.text)
				}
			}
			var texts []string
			for _, m := range got {
				texts = append(texts, m.Text)
				if m.Conversation != other(user) {
					t.Errorf("%s: message %q filed under %q", dev.DeviceID(), m.Text, m.Conversation)
				}
				if m.Outgoing != (m.From == user) {
					t.Errorf("%s: %q outgoing=%v", dev.DeviceID(), m.Text, m.Outgoing)
				}
			}
			if fmt.Sprint(texts) != fmt.Sprint(want) {
				t.Errorf("%s of %s received\n  %q\nwant\n  %q", dev.DeviceID(), user, texts, want)
			}
			h, err := dev.History(ctx, other(user), 100, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != len(all) {
				t.Errorf("%s of %s has %d messages in history, want %d", dev.DeviceID(), user, len(h), len(all))
			}
		}
	}
	// Nothing is delivered twice.
	for _, user := range []string{"alice", "bob"} {
		for _, dev := range devices[user] {
			if again := drain(t, dev); len(again) != 0 {
				t.Errorf("%s got %d messages again", dev.DeviceID(), len(again))
			}
		}
	}
}

func other(user string) string {
	if user == "alice" {
		return "bob"
	}
	return "alice"
}

func containsDevice(text string, c *Client) bool {
	return len(text) > 0 && fmt.Sprintf("%s/%s", c.Username(), c.DeviceID().String()[:6]) == text[:len(c.Username())+7]
}
