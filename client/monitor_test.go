package client

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
)

// publishVersions logs count further device lists for name through the
// server's store, each chained to the one before and keeping the same
// devices, signed with key — except the one that becomes KT version
// rogueKT (if any), signed with a key of the attacker's that adds a
// device. It returns the rogue list (nil without one).
func publishVersions(t *testing.T, ts *testServer, name string, key *identity.AccountKey, count int, rogueKT uint32) []byte {
	t.Helper()
	raw, err := ts.st.DeviceList(context.Background(), name, 0)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := identity.ParseSignedDeviceList(raw.Signed)
	if err != nil {
		t.Fatal(err)
	}
	l, err := prev.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	devs := devicesOf(l)
	var rogue []byte
	for range count {
		next := &identity.DeviceList{Account: name, Version: l.Version + 1, Prev: prev.Hash(), Devices: l.Devices}
		signer := key
		if next.Version-1 == uint64(rogueKT) {
			signer = identity.GenerateAccountKey()
			spy := identity.GenerateDeviceKeys().Public()
			next.Devices = append(append([]identity.DeviceEntry(nil), l.Devices...),
				identity.DeviceEntry{Device: spy, Name: name + "-tablet", Added: uint64(time.Now().Unix())})
		}
		s, err := identity.SignDeviceList(signer, next)
		if err != nil {
			t.Fatal(err)
		}
		if next.Version-1 == uint64(rogueKT) {
			rogue = s.Marshal()
		}
		ts.injectList(t, name, s.Marshal(), devs...)
		prev, l = s, next
	}
	return rogue
}

const noRogue = ^uint32(0)

// monitorPosition is the own-account monitor's next KT version.
func monitorPosition(t *testing.T, c *Client) uint32 {
	t.Helper()
	m, err := c.loadMonitor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m.next
}

// TestRogueVersionReportedAtOpen: while bob's only device is closed, the
// server logs a device list for bob with a device of its own (under its
// own account key). When bob opens his home — before any Receive — the
// check Open starts reports it as EventKeyTransparencyAlert, with the
// logged list, and OpenCheck returns the same security error.
func TestRogueVersionReportedAtOpen(t *testing.T) {
	ts := newTestServer(t)
	home := t.TempDir()
	opts := Options{Insecure: true, HTTPClient: ts.hs.Client(), DeviceName: "bob-laptop"}
	bob, err := Register(context.Background(), home, ts.url, "bob", opts)
	if err != nil {
		t.Fatal(err)
	}
	carol := ts.register(t, "carol")
	waitSequenced(t, carol, "bob", 0)
	if err := bob.MonitorAccount(context.Background()); err != nil {
		t.Fatalf("monitor before the attack: %v", err)
	}
	bob.Close()

	rogue := publishVersions(t, ts, "bob", identity.GenerateAccountKey(), 1, 1)
	waitSequenced(t, carol, "bob", 1)

	alerts := make(chan Event, 4)
	opts.OnAlert = func(e Event) { alerts <- e }
	bob, err = Open(context.Background(), home, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	select {
	case e := <-alerts:
		if e.Kind != EventKeyTransparencyAlert || e.From != "bob" {
			t.Fatalf("event %v from %q, want a key-transparency alert for bob", e.Kind, e.From)
		}
		ve := ktKind(t, e.Err, verify.UnexpectedVersion)
		if ve.Version != 1 || !bytes.Equal(ve.Value, rogue) {
			t.Fatalf("the alert names version %d (%d bytes), want the rogue list as KT version 1", ve.Version, len(ve.Value))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no alert after Open")
	}
	ktKind(t, bob.OpenCheck(context.Background()), verify.UnexpectedVersion)
	if n := monitorPosition(t, bob); n != 1 {
		t.Fatalf("the monitor moved on to %d past the rogue version", n)
	}
}

// hangingTransport never answers: a network that swallows packets.
type hangingTransport struct{}

func (hangingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	<-req.Context().Done()
	return nil, req.Context().Err()
}

// TestOpenNotBlockedByUnreachableServer: with the server unreachable, Open
// returns at once, the check it started ends in a network error that is no
// security error and raises no alert, and Close does not wait for it.
func TestOpenNotBlockedByUnreachableServer(t *testing.T) {
	ts := newTestServer(t)
	home := t.TempDir()
	bob, err := Register(context.Background(), home, ts.url, "bob", Options{Insecure: true, HTTPClient: ts.hs.Client(), DeviceName: "bob-laptop"})
	if err != nil {
		t.Fatal(err)
	}
	waitSequenced(t, bob, "bob", 0)
	bob.Close()

	alerted := make(chan Event, 1)
	start := time.Now()
	bob, err = Open(context.Background(), home, Options{HTTPClient: &http.Client{Transport: hangingTransport{}}, OnAlert: func(e Event) { alerted <- e }})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open took %v with the server unreachable", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := bob.OpenCheck(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("OpenCheck with a hanging network: %v, want it still running", err)
	}
	start = time.Now()
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close waited %v for the check", d)
	}
	if err := bob.OpenCheck(context.Background()); err == nil || isSecurity(err) {
		t.Fatalf("the interrupted check: %v, want a network error that is no security error", err)
	}
	select {
	case e := <-alerted:
		t.Fatalf("an alert for a network failure: %v", e.Err)
	default:
	}

	// A connection that fails (here TLS: a client that does not trust
	// the server's certificate) ends the check at once, with no alert
	// either.
	bob, err = Open(context.Background(), home, Options{HTTPClient: &http.Client{}, OnAlert: func(e Event) { alerted <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if err := bob.OpenCheck(context.Background()); err == nil || isSecurity(err) {
		t.Fatalf("a failed connection: %v, want an error that is no security error", err)
	}
	select {
	case e := <-alerted:
		t.Fatalf("an alert for a failed connection: %v", e.Err)
	default:
	}
}

// TestRogueVersionAmongManyWhileOfflineDetected: while bob's device is
// offline his other device publishes 150 device lists — more than one
// monitor proof opens (kt.MaxMonitorVersions) — and the server slips in
// one of its own among them. Bob's next check covers every version: the
// rogue one is reported as UnexpectedVersion with the logged list, the
// position stops right before it, and the alert repeats.
func TestRogueVersionAmongManyWhileOfflineDetected(t *testing.T) {
	const count, rogueKT = 150, 40
	if count <= kt.MaxMonitorVersions {
		t.Fatal("the test must publish more versions than one monitor proof opens")
	}
	ts := newTestServer(t)
	bob := ts.register(t, "bob")
	carol := ts.register(t, "carol")
	waitSequenced(t, carol, "bob", 0)
	if err := bob.MonitorAccount(context.Background()); err != nil {
		t.Fatalf("monitor before: %v", err)
	}
	rogue := publishVersions(t, ts, "bob", bob.account, count, rogueKT)
	waitSequenced(t, carol, "bob", count)

	ve := ktKind(t, bob.MonitorAccount(context.Background()), verify.UnexpectedVersion)
	if ve.Version != rogueKT || !bytes.Equal(ve.Value, rogue) {
		t.Fatalf("the alert names version %d (%d bytes), want the rogue list as KT version %d", ve.Version, len(ve.Value), rogueKT)
	}
	if n := monitorPosition(t, bob); n != rogueKT {
		t.Fatalf("monitor position %d, want %d (every version before the rogue one checked, not past it)", n, rogueKT)
	}
	ktKind(t, bob.MonitorAccount(context.Background()), verify.UnexpectedVersion)
}

// TestManyVersionsWhileOfflineAllChecked: 150 device lists the account
// made while this device was offline are all checked — the older ones one
// by one, the newest with a monitor proof — and the position ends past
// the greatest; a rogue version among the newest (within one monitor
// proof) is found as well.
func TestManyVersionsWhileOfflineAllChecked(t *testing.T) {
	const count = 150
	ts := newTestServer(t)
	bob := ts.register(t, "bob")
	carol := ts.register(t, "carol")
	waitSequenced(t, carol, "bob", 0)
	if err := bob.MonitorAccount(context.Background()); err != nil {
		t.Fatalf("monitor before: %v", err)
	}
	publishVersions(t, ts, "bob", bob.account, count, noRogue)
	waitSequenced(t, carol, "bob", count)
	if err := bob.MonitorAccount(context.Background()); err != nil {
		t.Fatalf("monitoring %d own versions: %v", count, err)
	}
	if n := monitorPosition(t, bob); n != count+1 {
		t.Fatalf("monitor position %d, want %d", n, count+1)
	}

	rogue := publishVersions(t, ts, "bob", bob.account, 100, count+90)
	waitSequenced(t, carol, "bob", count+100)
	ve := ktKind(t, bob.MonitorAccount(context.Background()), verify.UnexpectedVersion)
	if ve.Version != count+90 || !bytes.Equal(ve.Value, rogue) {
		t.Fatalf("the alert names version %d, want %d", ve.Version, count+90)
	}
}
