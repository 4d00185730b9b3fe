package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/provision"
)

// TestContactDeviceChangeEvents: when a contact's device list changes, the
// client reports it from Receive (a message from an unknown device makes it
// refresh the list), writes a system line into the conversation, and drops
// the sessions of removed devices.
func TestContactDeviceChangeEvents(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	if _, err := bob.Send(ctx, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	drain(t, alice)

	phone := ts.link(t, bob, "bob-phone")
	if _, err := phone.Send(ctx, "alice", "from my phone"); err != nil {
		t.Fatal(err)
	}
	evs := events(t, alice)
	if len(evs) < 2 || evs[0].Kind != EventDeviceAdded || evs[0].From != "bob" || evs[0].FromDevice != phone.selfID ||
		evs[0].DeviceName != "bob-phone" || evs[1].Kind != EventMessage {
		t.Fatalf("alice's events: %+v", evs)
	}
	if _, err := alice.Send(ctx, "bob", "hello phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.db.Session(ctx, phone.selfID); err != nil {
		t.Fatalf("no session with the phone: %v", err)
	}

	// Bob swaps the phone for a tablet; the tablet's first message shows
	// both changes at once.
	if err := bob.RemoveDevice(ctx, phone.selfID); err != nil {
		t.Fatal(err)
	}
	tablet := ts.link(t, bob, "bob-tablet")
	if _, err := tablet.Send(ctx, "alice", "from my tablet"); err != nil {
		t.Fatal(err)
	}
	k := kinds(events(t, alice))
	if k[EventDeviceAdded] != 1 || k[EventDeviceRemoved] != 1 || k[EventMessage] != 1 {
		t.Fatalf("alice's events after the swap: %v", k)
	}
	if _, err := alice.db.Session(ctx, phone.selfID); err == nil {
		t.Fatal("alice kept the session with the removed phone")
	}
	h, err := alice.History(ctx, "bob", 100, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, m := range h {
		if m.System {
			if m.State != StateSystem || m.Outgoing || m.From != "bob" {
				t.Errorf("system line %+v", m)
			}
			lines = append(lines, m.Text)
		}
	}
	// The last two share a timestamp: compare in sorted order.
	want := []string{`bob added a device ("bob-phone")`, `bob added a device ("bob-tablet")`, `bob removed a device ("bob-phone")`}
	slices.Sort(lines)
	if !slices.Equal(lines, want) {
		t.Fatalf("alice's system lines:\n  %q\nwant\n  %q", lines, want)
	}
}

// seedHistory writes n messages with ~200-byte bodies into c's conversation
// with contact, straight into its store (sending them one by one would
// measure the relay, not the transfer).
func seedHistory(tb testing.TB, c *Client, contact string, n int) map[[16]byte]string {
	tb.Helper()
	out := make(map[[16]byte]string, n)
	base := time.Now().Add(-time.Duration(n) * time.Second).Truncate(time.Millisecond)
	err := c.db.Update(context.Background(), func(tx *clientdb.Tx) error {
		for i := range n {
			var id [16]byte
			primitives.Random(id[:])
			body := fmt.Sprintf("message %05d %s", i, strings.Repeat("·", 90))
			m := &clientdb.Message{ID: id, Conversation: contact, Sender: contact, Sent: base.Add(time.Duration(i) * time.Millisecond),
				Received: base.Add(time.Duration(i) * time.Millisecond), Body: []byte(body), State: clientdb.StateReceived}
			if i%2 == 0 {
				m.Sender, m.Outgoing, m.State, m.SenderDevice = c.username, true, clientdb.StateSent, c.selfID
			}
			if _, err := tx.PutMessage(m); err != nil {
				return err
			}
			out[id] = body
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// allMessages returns every stored message of a conversation by id.
func allMessages(tb testing.TB, c *Client, conv string) map[[16]byte]string {
	tb.Helper()
	out := map[[16]byte]string{}
	var after int64
	for {
		ms, last, err := c.db.ExportMessages(context.Background(), conv, after, clientdb.MaxHistory)
		if err != nil {
			tb.Fatal(err)
		}
		if len(ms) == 0 {
			return out
		}
		for _, m := range ms {
			out[m.ID] = string(m.Body)
		}
		after = last
	}
}

// TestLinkTransfersTenThousandMessages: a history of 10,000 messages
// arrives whole on a newly linked device, every message with its body.
func TestLinkTransfersTenThousandMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 messages")
	}
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	first, err := bob.Send(ctx, "alice", "the first message, over the wire")
	if err != nil {
		t.Fatal(err)
	}
	drain(t, alice)
	want := seedHistory(t, alice, "bob", 10000)
	want[first.ID] = "the first message, over the wire"

	var progress []Progress
	p, err := StartLink(ctx, t.TempDir(), ts.url, "alice", Options{Insecure: true, HTTPClient: ts.hs.Client(), DeviceName: "alice-phone"})
	if err != nil {
		t.Fatal(err)
	}
	approved := make(chan error, 1)
	go func() { approved <- alice.ApproveLink(ctx, p.Code, func(string, string) error { return nil }, nil) }()
	phone, err := p.Wait(ctx, func(pr Progress) { progress = append(progress, pr) })
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	got := allMessages(t, phone, "bob")
	if len(got) != len(want) {
		t.Fatalf("the new device has %d messages, want %d", len(got), len(want))
	}
	for id, body := range want {
		if got[id] != body {
			t.Fatalf("message %x: %q, want %q", id, got[id], body)
		}
	}
	last := progress[len(progress)-1]
	if last.Phase != "history" || last.Done != len(want) || last.Total != len(want) {
		t.Fatalf("progress ended at %+v", last)
	}
}

// BenchmarkLinkHistory links a new device to an account whose history holds
// 10,000 messages, end to end over loopback TLS: offer, approval (publish,
// drain, snapshot, sealing, PutFrame), the new device's frame stream,
// verification and storage, its prekeys. Each link is undone (the device
// removed) outside the timer. "provision" is the raw transfer of the same
// history in memory (seal and open, no network, no store), for comparison.
func BenchmarkLinkHistory(b *testing.B) {
	const n = 10000
	ts := newTestServer(b)
	alice, _ := ts.register(b, "alice"), ts.register(b, "bob")
	ctx := context.Background()
	if _, err := alice.Send(ctx, "bob", "hello"); err != nil {
		b.Fatal(err)
	}
	seedHistory(b, alice, "bob", n)
	total := n + 1

	b.Run("end-to-end", func(b *testing.B) {
		var elapsed time.Duration
		for i := 0; b.Loop(); i++ {
			start := time.Now()
			phone := ts.link(b, alice, fmt.Sprintf("phone-%d", i))
			elapsed += time.Since(start)
			b.StopTimer()
			if err := alice.RemoveDevice(ctx, phone.selfID); err != nil {
				b.Fatal(err)
			}
			phone.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(total)*float64(b.N)/elapsed.Seconds(), "msgs/s")
	})

	b.Run("provision", func(b *testing.B) {
		history := make([]provision.HistoryMessage, 0, total)
		var after int64
		for {
			ms, last, err := alice.db.ExportMessages(ctx, "bob", after, clientdb.MaxHistory)
			if err != nil {
				b.Fatal(err)
			}
			if len(ms) == 0 {
				break
			}
			for _, m := range ms {
				history = append(history, provision.HistoryMessage{ID: m.ID, Conversation: m.Conversation, Sender: m.Sender,
					SenderDevice: identity.DeviceID(m.SenderDevice), Outgoing: m.Outgoing, Sent: m.Sent, Received: m.Received, State: uint8(m.State), Body: m.Body})
			}
			after = last
		}
		dev := identity.GenerateDeviceKeys().Public()
		cur, err := alice.storedList(ctx, "alice")
		if err != nil {
			b.Fatal(err)
		}
		curList, _ := cur.Verify(nil)
		list, err := identity.SignDeviceList(alice.account, &identity.DeviceList{Account: "alice", Version: curList.Version + 1, Prev: cur.Hash(),
			Devices: append(append([]identity.DeviceEntry(nil), curList.Devices...), identity.DeviceEntry{Device: dev, Name: "phone", Added: 1})})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for b.Loop() {
			offer, secret, err := provision.NewOffer(dev, "phone", time.Now())
			if err != nil {
				b.Fatal(err)
			}
			tx := provision.NewSender(offer)
			var frames [][]byte
			add := func(f []byte, err error) {
				if err != nil {
					b.Fatal(err)
				}
				frames = append(frames, f)
			}
			add(tx.Account(&provision.Account{Username: "alice", Server: ts.url, Key: alice.account, List: list, Messages: uint32(len(history))}))
			for sent := 0; sent < len(history); {
				k := provision.FitHistory(history[sent:])
				add(tx.History(history[sent : sent+k]))
				sent += k
			}
			add(tx.End())
			rx := provision.NewReceiver(secret, "alice")
			for _, f := range frames {
				if _, err := rx.Open(f); err != nil {
					b.Fatal(err)
				}
			}
			if err := rx.Finish(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(history))*float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}
