package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

// tally counts, per device, how often each message was reported by
// Receive, and checks every delivered message on the way.
type tally struct {
	t    *testing.T
	seen map[*Client]map[[16]byte]int
}

func (ty *tally) receive(c *Client) {
	ty.t.Helper()
	if ty.seen[c] == nil {
		ty.seen[c] = map[[16]byte]int{}
	}
	for _, e := range events(ty.t, c) {
		switch e.Kind {
		case EventMessage:
			m := e.Message
			ty.seen[c][m.ID]++
			if m.Outgoing != (m.From == c.Username()) {
				ty.t.Errorf("%s/%s: %q outgoing=%v from %s", c.Username(), c.DeviceID(), m.Text, m.Outgoing, m.From)
			}
		case EventUndecryptable:
			ty.t.Errorf("%s/%s: undecryptable from %s: %v", c.Username(), c.DeviceID(), e.From, e.Err)
		}
	}
}

// sent is one message with the devices it must reach, fixed when it was
// sent: every current device of the recipient and of the sender, but the
// sending device.
type sent struct {
	id      [16]byte
	text    string
	from    *Client
	to      string
	reaches map[*Client]bool
}

// TestThreeUsersThreeDevices: three accounts with three linked devices each
// hold a mixed conversation. Every message reaches every current device
// exactly once (sent copies on the sender's other devices); a device linked
// mid-conversation gets the whole history and every later message; a
// removed device gets nothing after its removal, cannot authenticate, and
// its home is wiped when it next connects.
func TestThreeUsersThreeDevices(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	users := []string{"alice", "bob", "carol"}
	devs := map[string][]*Client{}
	for _, u := range users {
		first := ts.register(t, u)
		devs[u] = []*Client{first, ts.link(t, first, u+"-2"), ts.link(t, first, u+"-3")}
	}
	ty := &tally{t: t, seen: map[*Client]map[[16]byte]int{}}
	var all []*sent
	send := func(from *Client, to string, text string) {
		t.Helper()
		m, err := from.Send(ctx, to, text)
		if err != nil {
			t.Fatalf("%s/%s → %s: %v", from.Username(), from.DeviceID(), to, err)
		}
		s := &sent{id: m.ID, text: text, from: from, to: to, reaches: map[*Client]bool{}}
		for _, d := range append(append([]*Client(nil), devs[to]...), devs[from.Username()]...) {
			s.reaches[d] = d != from
		}
		all = append(all, s)
	}
	round := func(label string) {
		t.Helper()
		for i := range 3 {
			for _, u := range users {
				for _, d := range devs[u] {
					for _, to := range users {
						if to != u && (i+len(to))%2 == 0 {
							send(d, to, fmt.Sprintf("%s: %s/%s to %s #%d", label, u, d.DeviceID().String()[:6], to, i))
						}
					}
				}
			}
		}
		for _, u := range users {
			for _, d := range devs[u] {
				ty.receive(d)
			}
		}
	}
	// check: every device got exactly what it must, once.
	check := func() {
		t.Helper()
		for _, u := range users {
			for _, d := range devs[u] {
				for _, s := range all {
					want := 0
					if s.reaches[d] {
						want = 1
					}
					if got := ty.seen[d][s.id]; got != want {
						t.Errorf("%s/%s received %q %d times, want %d", u, d.DeviceID(), s.text, got, want)
					}
				}
			}
		}
	}

	round("first")
	check()

	// Alice links a fourth device mid-conversation: it has the whole
	// history of both her conversations, and gets every later message.
	alice := devs["alice"][0]
	alice4 := ts.link(t, alice, "alice-4")
	for _, conv := range []string{"bob", "carol"} {
		h, err := alice4.History(ctx, conv, clientdb.MaxHistory, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		have := map[[16]byte]bool{}
		for _, m := range h {
			if !m.System {
				have[m.ID] = true
			}
		}
		for _, s := range all {
			involved := (s.to == "alice" && s.from.Username() == conv) || (s.from.Username() == "alice" && s.to == conv)
			if involved != have[s.id] {
				t.Errorf("alice-4's history of %s: %q present=%v", conv, s.text, have[s.id])
			}
		}
	}
	devs["alice"] = append(devs["alice"], alice4)
	round("second")
	check()

	// Bob removes his third device from his first.
	bob3 := devs["bob"][2]
	if err := devs["bob"][0].RemoveDevice(ctx, bob3.selfID); err != nil {
		t.Fatal(err)
	}
	devs["bob"] = devs["bob"][:2]
	round("third")
	check()
	// Nothing reached it after its removal: it has no queue at all.
	if envs, err := ts.st.Fetch(ctx, store.DeviceID(bob3.selfID), 0, 10); err == nil && len(envs) > 0 {
		t.Fatalf("the removed device has %d queued envelopes", len(envs))
	}
	// It cannot authenticate.
	auth := parleyv1connect.NewAuthServiceClient(ts.hs.Client(), ts.url)
	ch, err := auth.Challenge(ctx, connect.NewRequest(&parleyv1.ChallengeRequest{DeviceId: bob3.selfID[:]}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = auth.Authenticate(ctx, connect.NewRequest(&parleyv1.AuthenticateRequest{
		DeviceId: bob3.selfID[:], Challenge: ch.Msg.Challenge, Signature: bob3.device.Signing.Sign(primitives.LabelSigAuthChallenge, ch.Msg.Challenge),
	}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("the removed device authenticating: %v, want Unauthenticated", err)
	}
	// When it next connects, it proves its removal and wipes itself; no
	// message is reported.
	bob3.forgetToken(bob3.token)
	evs, err := receiveErr(bob3)
	if !errors.Is(err, ErrDeviceRemoved) {
		t.Fatalf("the removed device connecting: %v", err)
	}
	if k := kinds(evs); k[EventMessage] != 0 || k[EventDeviceRemoved] != 1 {
		t.Fatalf("the removed device's events: %v", k)
	}
	if homeExists(bob3) {
		t.Fatal("the removed device's home was not wiped")
	}
	// Alice's devices, which all sent to bob since, show the change.
	for _, d := range devs["alice"] {
		h, err := d.History(ctx, "bob", clientdb.MaxHistory, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range h {
			if m.System && m.FromDevice == bob3.selfID {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d system lines for bob's removed device, want 1", d.DeviceID(), n)
		}
	}
	// And nothing comes twice.
	for _, u := range users {
		for _, d := range devs[u] {
			if got := drain(t, d); len(got) != 0 {
				t.Errorf("%s/%s got %d messages again", u, d.DeviceID(), len(got))
			}
		}
	}
}

// TestLinkWhileMessagesInFlight: while a new device is linked, both sides
// keep sending. Every message ends up on the new device exactly once —
// either in the transferred history or in its queue, and a message in both
// is recognised and not shown again — and on every other device.
func TestLinkWhileMessagesInFlight(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	before, err := alice.Send(ctx, "bob", "before")
	if err != nil {
		t.Fatal(err)
	}
	const perSide = 25
	var mu sync.Mutex
	ids := map[[16]byte]string{before.ID: "before"}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, from := range []*Client{alice, bob} {
		to := other(from.Username())
		wg.Go(func() {
			<-start
			for i := range perSide {
				text := fmt.Sprintf("%s in flight %d", from.Username(), i)
				m, err := from.Send(ctx, to, text)
				if err != nil {
					t.Errorf("%s: %v", text, err)
					return
				}
				mu.Lock()
				ids[m.ID] = text
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	close(start)
	phone := ts.link(t, alice, "alice-phone")
	transferred := map[[16]byte]bool{}
	h, err := phone.History(ctx, "bob", clientdb.MaxHistory, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h {
		if !m.System {
			transferred[m.ID] = true
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	queued := map[[16]byte]int{}
	for _, m := range drain(t, phone) {
		queued[m.ID]++
	}
	for id, text := range ids {
		switch {
		case transferred[id] && queued[id] > 0:
			t.Errorf("%q shown twice on the new device (history and queue)", text)
		case !transferred[id] && queued[id] == 0:
			t.Errorf("%q lost on the new device", text)
		case queued[id] > 1:
			t.Errorf("%q shown %d times on the new device", text, queued[id])
		}
	}
	for id := range queued {
		if _, ok := ids[id]; !ok {
			t.Errorf("the new device received an unknown message %x", id)
		}
	}
	// The other devices hold the whole conversation, once each.
	drain(t, alice)
	for _, bobGot := range drain(t, bob) {
		if bobGot.Outgoing {
			t.Errorf("bob received his own message %q", bobGot.Text)
		}
	}
	for _, c := range []*Client{alice, bob, phone} {
		h, err := c.History(ctx, other(c.Username()), clientdb.MaxHistory, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range h {
			if !m.System {
				n++
			}
		}
		if n != len(ids) {
			t.Errorf("%s/%s holds %d messages, want %d", c.Username(), c.DeviceID(), n, len(ids))
		}
	}
}
