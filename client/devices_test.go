package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/store"
)

func homeExists(c *Client) bool {
	_, err := os.Stat(filepath.Join(c.home, DatabaseFile))
	return err == nil
}

// receiveErr receives until drained and returns the events and the error.
func receiveErr(c *Client) ([]Event, error) {
	var got []Event
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.Receive(ctx, ReceiveOptions{}, func(e Event) error {
		got = append(got, e)
		return nil
	})
	return got, err
}

// follow runs a following Receive in the background; the returned function
// waits for it and returns its events and error.
func follow(t *testing.T, c *Client) (drained <-chan struct{}, wait func() ([]Event, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	d := make(chan struct{})
	var once bool
	done := make(chan error, 1)
	var got []Event
	go func() {
		done <- c.Receive(ctx, ReceiveOptions{Follow: true}, func(e Event) error {
			got = append(got, e)
			if e.Kind == EventDrained && !once {
				once = true
				close(d)
			}
			return nil
		})
	}()
	t.Cleanup(cancel)
	return d, func() ([]Event, error) {
		err := <-done
		cancel()
		return got, err
	}
}

// TestRemoveDevice: a device removed by another device of its account is
// told on its open stream, proves the removal with the signed list, wipes
// its home and reports EventDeviceRemoved; a contact's next send drops it,
// deletes the session with it, and shows a system line.
func TestRemoveDevice(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	phone := ts.secondDevice(t, alice, "alice-phone")
	ctx := context.Background()
	if _, err := bob.Send(ctx, "alice", "hello both"); err != nil {
		t.Fatal(err)
	}
	drain(t, alice)
	if _, err := bob.db.Session(ctx, phone.selfID); err != nil {
		t.Fatalf("bob has no session with the phone: %v", err)
	}

	drained, wait := follow(t, phone)
	<-drained
	if err := alice.RemoveDevice(ctx, phone.selfID); err != nil {
		t.Fatal(err)
	}
	events, err := wait()
	if !errors.Is(err, ErrDeviceRemoved) {
		t.Fatalf("the removed phone's Receive: %v, want ErrDeviceRemoved", err)
	}
	last := events[len(events)-1]
	if last.Kind != EventDeviceRemoved || last.FromDevice != phone.selfID || last.From != "alice" {
		t.Fatalf("last event %+v, want this device's removal", last)
	}
	if homeExists(phone) {
		t.Fatal("the removed phone's store was not wiped")
	}
	if _, err := phone.Send(ctx, "bob", "still here?"); !errors.Is(err, ErrDeviceRemoved) {
		t.Fatalf("sending from a removed device: %v", err)
	}

	// Bob's next send is refused as stale; he refreshes, drops the phone
	// and its session, and his conversation shows the change.
	if _, err := bob.Send(ctx, "alice", "only the laptop now"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.db.Session(ctx, phone.selfID); err == nil {
		t.Fatal("bob kept the session with the removed phone")
	}
	h, err := bob.History(ctx, "alice", 10, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var system []string
	for _, m := range h {
		if m.System {
			system = append(system, m.Text)
		}
	}
	if len(system) != 1 || !strings.Contains(system[0], `alice removed a device ("alice-phone")`) {
		t.Fatalf("bob's system lines: %q", system)
	}
	if got := drain(t, alice); len(got) != 1 || got[0].Text != "only the laptop now" {
		t.Fatalf("alice got %+v", got)
	}

	if err := alice.RemoveDevice(ctx, alice.selfID); !errors.Is(err, ErrLastDevice) {
		t.Fatalf("removing the last device: %v, want ErrLastDevice", err)
	}
	if err := alice.RemoveDevice(ctx, phone.selfID); !errors.Is(err, ErrNoSuchDevice) {
		t.Fatalf("removing a removed device: %v, want ErrNoSuchDevice", err)
	}
}

// TestRemovedOfflineDeviceWipedWhenItConnects: a device removed while it was
// offline cannot authenticate; when it next connects it asks for the proof,
// gets it, and wipes itself.
func TestRemovedOfflineDeviceWipedWhenItConnects(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	phone := ts.secondDevice(t, alice, "alice-phone")
	tablet := ts.secondDevice(t, alice, "alice-tablet")
	ctx := context.Background()
	home := phone.home
	phone.Close()
	if err := alice.RemoveDevice(ctx, phone.selfID); err != nil {
		t.Fatal(err)
	}
	// A later change too: the proof is a chain of several versions.
	if err := alice.RenameDevice(ctx, tablet.selfID, "tablet"); err != nil {
		t.Fatal(err)
	}
	phone, err := Open(ctx, home, Options{HTTPClient: ts.hs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	phone.forgetToken(phone.token) // as after the token expired
	if _, err := receiveErr(phone); !errors.Is(err, ErrDeviceRemoved) {
		t.Fatalf("a removed device connecting: %v, want ErrDeviceRemoved", err)
	}
	if homeExists(phone) {
		t.Fatal("not wiped")
	}
	if _, err := Open(ctx, home, Options{HTTPClient: ts.hs.Client()}); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("opening the wiped home: %v", err)
	}
}

// TestRemoveItself: a device may remove itself; it wipes its own store.
func TestRemoveItself(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	phone := ts.secondDevice(t, alice, "alice-phone")
	ctx := context.Background()
	if err := phone.RemoveDevice(ctx, phone.selfID); err != nil {
		t.Fatal(err)
	}
	if homeExists(phone) {
		t.Fatal("not wiped")
	}
	devs, err := alice.Devices(ctx, true)
	if err != nil || len(devs) != 1 || devs[0].ID != alice.selfID {
		t.Fatalf("devices after the phone left: %+v %v", devs, err)
	}
}

// TestServerCannotMakeDeviceWipeItself: a server that drops a device with
// a device list the account key did not sign (written straight into its
// store) makes the device's authentication fail, but the device finds no
// valid proof: a security error, and its home stays.
func TestServerCannotMakeDeviceWipeItself(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	phone := ts.secondDevice(t, alice, "alice-phone")
	ctx := context.Background()
	cur, err := ts.st.DeviceList(ctx, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	prev, _ := identity.ParseSignedDeviceList(cur.Signed)
	forged, err := identity.SignDeviceList(identity.GenerateAccountKey(), &identity.DeviceList{
		Account: "alice", Version: cur.Version + 1, Prev: prev.Hash(),
		Devices: []identity.DeviceEntry{{Device: alice.self, Name: "laptop", Added: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.st.UpdateDeviceList(ctx, store.DeviceListUpdate{
		List:    store.DeviceList{Username: "alice", Version: cur.Version + 1, Signed: forged.Marshal()},
		Devices: []store.Device{{ID: store.DeviceID(alice.selfID), Username: "alice", Public: alice.self.Marshal(), Added: time.Now(), LastSeen: time.Now()}},
	}); err != nil {
		t.Fatal(err)
	}
	phone.forgetToken(phone.token)
	if _, err := receiveErr(phone); !errors.Is(err, ErrSecurity) {
		t.Fatalf("a forged removal: %v, want ErrSecurity", err)
	}
	if !homeExists(phone) {
		t.Fatal("a forged removal wiped the device")
	}
}

// TestNoWipeWhenServerUnreachable: a device whose server is gone reports a
// network error and keeps its store.
func TestNoWipeWhenServerUnreachable(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	ts.hs.Close()
	alice.forgetToken(alice.token)
	_, err := receiveErr(alice)
	if err == nil || errors.Is(err, ErrDeviceRemoved) || errors.Is(err, ErrSecurity) {
		t.Fatalf("receive without a server: %v", err)
	}
	if !homeExists(alice) {
		t.Fatal("wiped on a network error")
	}
}

// TestRenameAndListDevices: a rename is a new list version every device
// and contact accepts; Devices merges the names from the signed list with
// the server's last-seen times.
func TestRenameAndListDevices(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	phone := ts.secondDevice(t, alice, "alice-phone")
	ctx := context.Background()
	drain(t, phone) // the phone connects: the server sees it
	if err := phone.RenameDevice(ctx, alice.selfID, "laptop (work)"); err != nil {
		t.Fatal(err)
	}
	devs, err := alice.Devices(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 {
		t.Fatalf("devices: %+v", devs)
	}
	for _, d := range devs {
		if d.LastSeen.IsZero() || d.Added.IsZero() {
			t.Errorf("device %s without times: %+v", d.ID, d)
		}
		switch d.ID {
		case alice.selfID:
			if d.Name != "laptop (work)" || !d.Current {
				t.Errorf("laptop: %+v", d)
			}
		case phone.selfID:
			if d.Name != "alice-phone" || d.Current {
				t.Errorf("phone: %+v", d)
			}
		}
	}
	if err := alice.RenameDevice(ctx, alice.selfID, strings.Repeat("x", identity.MaxDeviceNameSize+1)); err == nil {
		t.Fatal("an over-long name was accepted")
	}
	var unknown identity.DeviceID
	if err := alice.RenameDevice(ctx, unknown, "ghost"); !errors.Is(err, ErrNoSuchDevice) {
		t.Fatalf("renaming an unknown device: %v", err)
	}
}

// TestDevicesRefusesDeviceTheListDoesNotName: the server's ListDevices may
// only add times; a device it lists that the signed list does not name (a
// device the server inserted) is a security error.
func TestDevicesRefusesDeviceTheListDoesNotName(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	ctx := context.Background()
	cur, _ := ts.st.DeviceList(ctx, "alice", 0)
	prev, _ := identity.ParseSignedDeviceList(cur.Signed)
	evil := identity.GenerateDeviceKeys().Public()
	forged, err := identity.SignDeviceList(identity.GenerateAccountKey(), &identity.DeviceList{
		Account: "alice", Version: 2, Prev: prev.Hash(),
		Devices: []identity.DeviceEntry{{Device: alice.self, Name: "laptop", Added: 1}, {Device: evil, Name: "evil", Added: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := ts.st.UpdateDeviceList(ctx, store.DeviceListUpdate{
		List: store.DeviceList{Username: "alice", Version: 2, Signed: forged.Marshal()},
		Devices: []store.Device{
			{ID: store.DeviceID(alice.selfID), Username: "alice", Public: alice.self.Marshal(), Added: now, LastSeen: now},
			{ID: store.DeviceID(evil.ID()), Username: "alice", Public: evil.Marshal(), Added: now, LastSeen: now},
		},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Devices(ctx, false); !errors.Is(err, ErrSecurity) {
		t.Fatalf("Devices with a server-inserted device: %v, want ErrSecurity", err)
	}
}

// TestDeleteAccount: deleting the account wipes the deleting device; the
// other device learns that the account is gone and keeps its store (the
// server's word alone); a contact can no longer send to the account.
func TestDeleteAccount(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	phone := ts.secondDevice(t, alice, "alice-phone")
	ctx := context.Background()
	if _, err := bob.Send(ctx, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	drained, wait := follow(t, phone)
	<-drained
	if err := alice.DeleteAccount(ctx); err != nil {
		t.Fatal(err)
	}
	if homeExists(alice) {
		t.Fatal("the deleting device kept its store")
	}
	if _, err := wait(); !errors.Is(err, ErrAccountDeleted) {
		t.Fatalf("the other device's Receive: %v, want ErrAccountDeleted", err)
	}
	if !homeExists(phone) {
		t.Fatal("the other device was wiped on the server's word")
	}
	if _, err := bob.Send(ctx, "alice", "anyone?"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("sending to a deleted account: %v, want ErrNoSuchUser", err)
	}
	if err := alice.DeleteAccount(ctx); !errors.Is(err, ErrDeviceRemoved) {
		t.Fatalf("deleting twice: %v", err)
	}
}
