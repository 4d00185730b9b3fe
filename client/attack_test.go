package client

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/provision"
	"github.com/parleyim/parley/internal/store"
)

// The server cannot add a device (docs/protocol.md §3.3): these tests play
// a server that writes device lists straight into its store, as a
// compromised operator could, and check that the client refuses each with
// ErrSecurity and sends nothing to the injected device.

// injectList makes the server's current list of an account the given bytes,
// with devs as its current devices (what the relay then demands envelopes
// for).
func (ts *testServer) injectList(t *testing.T, name string, signed []byte, devs ...*identity.DevicePublic) {
	t.Helper()
	ctx := context.Background()
	cur, err := ts.st.DeviceList(ctx, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var sd []store.Device
	for _, d := range devs {
		sd = append(sd, store.Device{ID: store.DeviceID(d.ID()), Username: name, Public: d.Marshal(), Added: now, LastSeen: now})
	}
	if _, err := ts.st.UpdateDeviceList(ctx, store.DeviceListUpdate{
		List: store.DeviceList{Username: name, Version: cur.Version + 1, Signed: signed}, Devices: sd,
	}); err != nil {
		t.Fatal(err)
	}
}

// attackSetup: alice has talked to bob, so she holds bob's list; bob's
// queue is empty.
func attackSetup(t *testing.T) (ts *testServer, alice, bob *Client) {
	ts = newTestServer(t)
	alice, bob = ts.register(t, "alice"), ts.register(t, "bob")
	if _, err := alice.Send(context.Background(), "bob", "hello"); err != nil {
		t.Fatal(err)
	}
	drain(t, bob)
	return ts, alice, bob
}

// refusedAndNothingSent sends from alice to bob and checks that it fails
// with ErrSecurity and that no queue holds anything.
func refusedAndNothingSent(t *testing.T, ts *testServer, alice *Client, devs ...*identity.DevicePublic) {
	t.Helper()
	ctx := context.Background()
	_, err := alice.Send(ctx, "bob", "secret")
	var se *SecurityError
	if !errors.Is(err, ErrSecurity) || !errors.As(err, &se) {
		t.Fatalf("send after the injected list: %v, want ErrSecurity", err)
	}
	t.Logf("refused: %v", err)
	h, err := alice.History(ctx, "bob", 100, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h {
		if m.Text == "secret" && m.State != clientdb.StateFailed {
			t.Fatalf("the refused message is %s, want failed", m.State)
		}
	}
	for _, d := range devs {
		if n, err := ts.st.QueueLength(ctx, store.DeviceID(d.ID())); err == nil && n != 0 {
			t.Fatalf("device %s has %d envelopes queued", d.ID(), n)
		}
	}
}

// TestDeviceInjectionListNotSignedByAccountKey: the server serves a list
// that adds its own device, signed by a key that is not bob's account key —
// once naming its own key (a changed account key) and once naming bob's key
// with a signature that does not verify under it.
func TestDeviceInjectionListNotSignedByAccountKey(t *testing.T) {
	for _, variant := range []string{"own key", "bob's key, forged signature"} {
		t.Run(variant, func(t *testing.T) {
			ts, alice, bob := attackSetup(t)
			ctx := context.Background()
			cur, _ := ts.st.DeviceList(ctx, "bob", 0)
			prev, _ := identity.ParseSignedDeviceList(cur.Signed)
			evil := identity.GenerateDeviceKeys().Public()
			mallory := identity.GenerateAccountKey()
			forged, err := identity.SignDeviceList(mallory, &identity.DeviceList{
				Account: "bob", Version: 2, Prev: prev.Hash(),
				Devices: []identity.DeviceEntry{{Device: bob.self, Name: "bob-laptop", Added: 1}, {Device: evil, Name: "evil", Added: 1}},
			})
			if err != nil {
				t.Fatal(err)
			}
			raw := forged.Marshal()
			if variant != "own key" {
				raw = bytes.Replace(raw, mallory.Public().Bytes(), bob.account.Public().Bytes(), 1)
			}
			ts.injectList(t, "bob", raw, bob.self, evil)
			refusedAndNothingSent(t, ts, alice, bob.self, evil)
		})
	}
}

// TestDeviceListRollbackRefused: after alice saw version 2 of bob's list,
// the server serves version 1 again as current (a rolled-back store).
func TestDeviceListRollbackRefused(t *testing.T) {
	ts, alice, bob := attackSetup(t)
	ctx := context.Background()
	v1, _ := ts.st.DeviceList(ctx, "bob", 1)
	phone := ts.secondDevice(t, bob, "bob-phone")
	if _, err := alice.Send(ctx, "bob", "to both"); err != nil { // alice accepts version 2
		t.Fatal(err)
	}
	drain(t, bob)
	drain(t, phone)
	// Version 3 in the store is version 1's bytes: the server says the
	// phone is gone, with an old list.
	ts.injectList(t, "bob", v1.Signed, bob.self)
	refusedAndNothingSent(t, ts, alice, bob.self)
}

// TestDeviceListBrokenChainRefused: the server serves a next version
// signed by bob's real account key (a key it obtained, or a list bob signed
// on another branch) whose previous-hash does not chain to the version alice
// saw.
func TestDeviceListBrokenChainRefused(t *testing.T) {
	ts, alice, bob := attackSetup(t)
	evil := identity.GenerateDeviceKeys().Public()
	forked, err := identity.SignDeviceList(bob.account, &identity.DeviceList{
		Account: "bob", Version: 2, Prev: [32]byte{1, 2, 3},
		Devices: []identity.DeviceEntry{{Device: bob.self, Name: "bob-laptop", Added: 1}, {Device: evil, Name: "evil", Added: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.injectList(t, "bob", forked.Marshal(), bob.self, evil)
	refusedAndNothingSent(t, ts, alice, bob.self, evil)
}

// TestProvisioningTransferReplayedToSecondDevice: the server copies the
// frames an approving device sent to one new device into the mailbox of a
// second new device. The second device cannot open them and creates no
// home; the first one links normally.
func TestProvisioningTransferReplayedToSecondDevice(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := Options{Insecure: true, HTTPClient: ts.hs.Client()}
	first, err := StartLink(ctx, t.TempDir(), ts.url, "alice", opts)
	if err != nil {
		t.Fatal(err)
	}
	secondHome := t.TempDir()
	second, err := StartLink(ctx, secondHome, ts.url, "alice", opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ApproveLink(ctx, first.Code, func(string, string) error { return nil }, nil); err != nil {
		t.Fatal(err)
	}
	frames, err := ts.st.Frames(ctx, store.MailboxAddress(first.address), 0, 1000)
	if err != nil || len(frames) == 0 {
		t.Fatalf("frames: %d, %v", len(frames), err)
	}
	for i, f := range frames {
		if err := ts.st.AppendFrame(ctx, store.MailboxAddress(second.address), uint32(i), f, 1<<30, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := second.Wait(ctx, nil); !errors.Is(err, provision.ErrSecurity) {
		t.Fatalf("the second device opening replayed frames: %v, want a provisioning security error", err)
	}
	if _, err := Open(ctx, secondHome, opts); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("the second device has a home: %v", err)
	}
	c, err := first.Wait(ctx, nil)
	if err != nil {
		t.Fatalf("the first device: %v", err)
	}
	c.Close()
}
