package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// link runs both halves of linking a new device to c's account and returns
// the new device's client.
func (ts *testServer) link(t testing.TB, c *Client, name string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := StartLink(ctx, t.TempDir(), ts.url, c.Username(), Options{Insecure: true, HTTPClient: ts.hs.Client(), DeviceName: name})
	if err != nil {
		t.Fatalf("start link: %v", err)
	}
	approved := make(chan error, 1)
	go func() {
		approved <- c.ApproveLink(ctx, p.Code, func(device, confirmation string) error {
			if device != name || confirmation != p.Confirmation {
				return ErrLinkDeclined
			}
			return nil
		}, nil)
	}()
	var last Progress
	nc, err := p.Wait(ctx, func(pr Progress) { last = pr })
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if err := <-approved; err != nil {
		t.Fatalf("approve: %v", err)
	}
	if last.Phase == "history" && last.Done != last.Total {
		t.Fatalf("progress ended at %+v", last)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestLinkedDeviceGetsHistoryAndEveryLaterMessage: a device linked
// mid-conversation receives the whole history and every later message, and
// its own messages reach the contact and the account's other device.
func TestLinkedDeviceGetsHistoryAndEveryLaterMessage(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	for i := range 5 {
		if _, err := alice.Send(ctx, "bob", fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Send(ctx, "alice", fmt.Sprint("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, bob)
	// Alice has not received bob's messages yet: approval drains her queue
	// first, so they are in the history she sends.
	phone := ts.link(t, alice, "alice-phone")
	h, err := phone.History(ctx, "bob", 100, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 10 {
		t.Fatalf("the linked device has %d messages of history, want 10", len(h))
	}
	// Later messages reach every device.
	if _, err := bob.Send(ctx, "alice", "after the link"); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []*Client{alice, phone} {
		got := drain(t, dev)
		if len(got) != 1 || got[0].Text != "after the link" {
			t.Fatalf("%s got %+v", dev.DeviceID(), got)
		}
	}
	if _, err := phone.Send(ctx, "bob", "from the phone"); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, bob); len(got) != 1 || got[0].Text != "from the phone" {
		t.Fatalf("bob got %+v", got)
	}
	if got := drain(t, alice); len(got) != 1 || got[0].Text != "from the phone" || !got[0].Outgoing {
		t.Fatalf("alice's other device got %+v", got)
	}
}

// TestLinkWithWrongConfirmationRefused: if the confirmation strings differ
// (the person typed a code someone else gave them), nothing is published
// and nothing is sent.
func TestLinkWithWrongConfirmationRefused(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	ctx := context.Background()
	p, err := StartLink(ctx, t.TempDir(), ts.url, "alice", Options{Insecure: true, HTTPClient: ts.hs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := p.Wait(ctx, nil)
		waited <- err
	}()
	err = alice.ApproveLink(ctx, p.Code, func(_, confirmation string) error {
		if confirmation == "0000-0000-0000-0000" {
			return nil
		}
		return ErrLinkDeclined
	}, nil)
	if !errors.Is(err, ErrLinkDeclined) {
		t.Fatalf("approve with a wrong confirmation: %v", err)
	}
	devs, err := alice.Devices(ctx, true)
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices after a refused link: %d, %v", len(devs), err)
	}
	// The new device hears of it at once, not when the code expires.
	select {
	case err := <-waited:
		if !errors.Is(err, ErrLinkEnded) {
			t.Fatalf("the new device's wait ended with %v, want ErrLinkEnded", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the new device was not told the link was declined")
	}
}

// TestAbandonedLinkCannotBeApproved: once the new device gave up waiting,
// its code no longer adds a device to the account (which would be a device
// that never comes, leaving the account's senders waiting for its prekeys).
func TestAbandonedLinkCannotBeApproved(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	ctx := context.Background()
	p, err := StartLink(ctx, t.TempDir(), ts.url, "alice", Options{Insecure: true, HTTPClient: ts.hs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := p.Wait(wctx, nil); err == nil {
		t.Fatal("wait without an approval succeeded")
	}
	err = alice.ApproveLink(ctx, p.Code, func(string, string) error { return nil }, nil)
	if err == nil {
		t.Fatal("an abandoned link was approved")
	}
	devs, err := alice.Devices(ctx, true)
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices after an abandoned link: %d, %v", len(devs), err)
	}
}

// TestApprovedDeviceReachableBeforeItFinishes: a new device that was
// approved but never finished linking (it died before reading the
// transfer) does not stop the account's contacts from sending: its signed
// and last-resort prekeys came with its offer and were published with the
// device list that added it.
func TestApprovedDeviceReachableBeforeItFinishes(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	p, err := StartLink(ctx, t.TempDir(), ts.url, "alice", Options{Insecure: true, HTTPClient: ts.hs.Client(), DeviceName: "lost-phone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ApproveLink(ctx, p.Code, func(string, string) error { return nil }, nil); err != nil {
		t.Fatal(err)
	}
	// The new device never calls Wait. Bob sends to alice at once.
	if _, err := bob.Send(ctx, "alice", "are you there?"); err != nil {
		t.Fatalf("send to an account with a device that has not finished linking: %v", err)
	}
	if got := drain(t, alice); len(got) != 1 || got[0].Text != "are you there?" {
		t.Fatalf("alice got %+v", got)
	}
}
