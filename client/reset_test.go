package client

import (
	"context"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/clientdb"
)

// events receives until drained and returns every event.
func events(t *testing.T, c *Client) []Event {
	t.Helper()
	var got []Event
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Receive(ctx, ReceiveOptions{}, func(e Event) error {
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatalf("%s receive: %v", c.Username(), err)
	}
	return got
}

func kinds(es []Event) map[EventKind]int {
	m := map[EventKind]int{}
	for _, e := range es {
		m[e.Kind]++
	}
	return m
}

// TestLostSessionHealsByReset: a device that lost its session (here: the
// record is deleted, as after restoring an old backup of the store) cannot
// decrypt; it reports the failure, resets the session automatically, and the
// conversation carries on — once: a second failure within ResetInterval does
// not reset again.
func TestLostSessionHealsByReset(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	if _, err := alice.Send(ctx, "bob", "before"); err != nil {
		t.Fatal(err)
	}
	drain(t, bob)
	if _, err := bob.Send(ctx, "alice", "confirmed"); err != nil {
		t.Fatal(err)
	}
	drain(t, alice)

	// Bob loses his session with alice's device.
	if err := bob.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.DeleteSession(alice.selfID) }); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "lost"); err != nil {
		t.Fatal(err)
	}
	if k := kinds(events(t, bob)); k[EventUndecryptable] != 1 || k[EventMessage] != 0 {
		t.Fatalf("bob's events after losing the session: %v", k)
	}
	// Alice learns of the reset and switches to the new session.
	if k := kinds(events(t, alice)); k[EventSessionReset] != 1 {
		t.Fatalf("alice's events: %v", k)
	}
	if _, err := alice.Send(ctx, "bob", "after the reset"); err != nil {
		t.Fatal(err)
	}
	got := drain(t, bob)
	if len(got) != 1 || got[0].Text != "after the reset" {
		t.Fatalf("after the reset bob got %+v", got)
	}
	if _, err := bob.Send(ctx, "alice", "and back"); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, alice); len(got) != 1 || got[0].Text != "and back" {
		t.Fatalf("alice got %+v", got)
	}

	// A second loss within the hour is reported but not reset again.
	if err := bob.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.DeleteSession(alice.selfID) }); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "lost again"); err != nil {
		t.Fatal(err)
	}
	if k := kinds(events(t, bob)); k[EventUndecryptable] != 1 {
		t.Fatalf("bob's events: %v", k)
	}
	if k := kinds(events(t, alice)); k[EventSessionReset] != 0 {
		t.Fatalf("a second reset within ResetInterval: %v", k)
	}
}
