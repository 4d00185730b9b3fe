package storetest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
)

func testCreateAccount(t *testing.T, h *harness) {
	f := h.register("alice", 2)

	a, err := h.s.Account(h.ctx, "alice")
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	if a.Username != "alice" || !bytes.Equal(a.AccountKey, f.Account.AccountKey) || !a.Created.Equal(base) || a.ListVersion != 1 {
		t.Errorf("Account = %+v, want alice, its key, created %v, list version 1", a, base)
	}
	for _, v := range []uint64{0, 1} {
		l, err := h.s.DeviceList(h.ctx, "alice", v)
		if err != nil {
			t.Fatalf("DeviceList(%d): %v", v, err)
		}
		if l.Username != "alice" || l.Version != 1 || !bytes.Equal(l.Signed, f.List.Signed) {
			t.Errorf("DeviceList(%d) = %+v, want version 1 as uploaded", v, l)
		}
	}
	ds, err := h.s.Devices(h.ctx, "alice")
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if got, want := deviceIDs(ds), sortedIDs(f.ids); !slices.Equal(got, want) {
		t.Errorf("Devices ids = %x, want %x (ordered by id)", got, want)
	}
	for _, id := range f.ids {
		d, err := h.s.Device(h.ctx, id)
		if err != nil {
			t.Fatalf("Device: %v", err)
		}
		want := device("alice", id)
		if d.ID != id || d.Username != "alice" || !bytes.Equal(d.Public, want.Public) ||
			!d.Added.Equal(base) || !d.LastSeen.Equal(base) {
			t.Errorf("Device = %+v, want %+v", d, want)
		}
		if ot, pq := h.counts(id); ot != 5 || pq != 3 {
			t.Errorf("PrekeyCounts = %d, %d, want 5, 3", ot, pq)
		}
		if n := h.queueLength(id); n != 0 {
			t.Errorf("QueueLength = %d, want 0", n)
		}
	}
}

// assertNoAccount checks that a failed registration left nothing behind:
// no account, no list, none of its devices.
func assertNoAccount(t *testing.T, h *harness, f fixture) {
	t.Helper()
	if _, err := h.s.Account(h.ctx, f.Account.Username); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Account after failed registration: %v, want ErrNotFound", err)
	}
	if _, err := h.s.DeviceList(h.ctx, f.Account.Username, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeviceList after failed registration: %v, want ErrNotFound", err)
	}
	for _, id := range f.ids {
		if _, err := h.s.Device(h.ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Device after failed registration: %v, want ErrNotFound", err)
		}
	}
}

func testCreateAccountDuplicateUsername(t *testing.T, h *harness) {
	first := h.register("alice", 1)
	second := newAccount(t, "alice", 1)
	err := h.s.CreateAccount(h.ctx, second.NewAccount)
	wantErr(t, "CreateAccount with a taken username", err, store.ErrAccountExists)

	// The second registration's device must not exist; the first account
	// must be untouched.
	if _, err := h.s.Device(h.ctx, second.ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("device of the refused registration: %v, want ErrNotFound", err)
	}
	a, err := h.s.Account(h.ctx, "alice")
	if err != nil || !bytes.Equal(a.AccountKey, first.Account.AccountKey) {
		t.Errorf("Account after refused duplicate = %+v, %v; want the first account", a, err)
	}
	ds, err := h.s.Devices(h.ctx, "alice")
	if err != nil || !slices.Equal(deviceIDs(ds), first.ids) {
		t.Errorf("Devices after refused duplicate = %x, %v; want %x", deviceIDs(ds), err, first.ids)
	}
}

func testCreateAccountDuplicateDevice(t *testing.T, h *harness) {
	alice := h.register("alice", 1)
	if err := h.s.CreateInvite(h.ctx, []byte("invite"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("CreateInvite: %v", err)
	}

	// bob's second device reuses alice's device id; his first is new. The
	// whole registration must fail, with nothing of it left behind: not
	// the account, not the new device, not its prekeys, not the invite.
	bob := newAccount(t, "bob", 2)
	taken := alice.ids[0]
	bob.Devices[1] = device("bob", taken)
	bob.Prekeys[taken] = prekeys(taken, 50, 50)
	delete(bob.Prekeys, bob.ids[1])
	bob.ids[1] = taken
	bob.InviteHash = []byte("invite")
	err := h.s.CreateAccount(h.ctx, bob.NewAccount)
	wantErr(t, "CreateAccount with a taken device id", err, store.ErrDeviceExists)

	assertNoAccount(t, h, fixture{NewAccount: bob.NewAccount, ids: bob.ids[:1]})
	d, err := h.s.Device(h.ctx, taken)
	if err != nil || d.Username != "alice" {
		t.Errorf("taken device after refused registration = %+v, %v; want alice's", d, err)
	}
	if ot, pq := h.counts(taken); ot != 5 || pq != 3 {
		t.Errorf("prekeys of the taken device = %d, %d, want alice's 5, 3", ot, pq)
	}

	// The invite was not consumed: a correct registration can use it.
	carol := newAccount(t, "carol", 1)
	carol.InviteHash = []byte("invite")
	if err := h.s.CreateAccount(h.ctx, carol.NewAccount); err != nil {
		t.Fatalf("CreateAccount with the invite a failed registration did not consume: %v", err)
	}
}

func testCreateAccountInvites(t *testing.T, h *harness) {
	now := time.Now()
	if err := h.s.CreateInvite(h.ctx, []byte("good"), now.Add(time.Hour)); err != nil {
		t.Fatalf("CreateInvite: %v", err)
	}
	if err := h.s.CreateInvite(h.ctx, []byte("stale"), now.Add(-time.Minute)); err != nil {
		t.Fatalf("CreateInvite: %v", err)
	}

	for _, tc := range []struct {
		name, invite string
	}{{"unknown", "unknown"}, {"expired", "stale"}} {
		f := newAccount(t, "user-"+tc.name, 1)
		f.InviteHash = []byte(tc.invite)
		wantErr(t, "CreateAccount with an "+tc.name+" invite", h.s.CreateAccount(h.ctx, f.NewAccount), store.ErrInviteInvalid)
		assertNoAccount(t, h, f)
	}

	first := newAccount(t, "first", 1)
	first.InviteHash = []byte("good")
	if err := h.s.CreateAccount(h.ctx, first.NewAccount); err != nil {
		t.Fatalf("CreateAccount with a valid invite: %v", err)
	}
	second := newAccount(t, "second", 1)
	second.InviteHash = []byte("good")
	wantErr(t, "CreateAccount with a used invite", h.s.CreateAccount(h.ctx, second.NewAccount), store.ErrInviteInvalid)
	assertNoAccount(t, h, second)

	// Without an invite (open registration) nothing is checked.
	h.register("open", 1)
}

// testCreateAccountConcurrent races registrations for one username and
// for one invite: exactly one of each wins.
func testCreateAccountConcurrent(t *testing.T, h *harness) {
	const racers = 16
	if err := h.s.CreateInvite(h.ctx, []byte("one"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("CreateInvite: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2*racers)
	for i := range racers {
		same := newAccount(t, "contested", 1)
		invited := newAccount(t, "invited-"+string(rune('a'+i)), 1)
		invited.InviteHash = []byte("one")
		wg.Go(func() { errs[i] = h.s.CreateAccount(h.ctx, same.NewAccount) })
		wg.Go(func() { errs[racers+i] = h.s.CreateAccount(h.ctx, invited.NewAccount) })
	}
	wg.Wait()
	for half, want := range []error{store.ErrAccountExists, store.ErrInviteInvalid} {
		wins := 0
		for _, err := range errs[half*racers : (half+1)*racers] {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, want):
				t.Errorf("losing registration: %v, want %v", err, want)
			}
		}
		if wins != 1 {
			t.Errorf("%d registrations won, want exactly 1", wins)
		}
	}
}

func testNotFound(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	_, err := h.s.Account(h.ctx, "nobody")
	wantErr(t, "Account(unknown)", err, store.ErrNotFound)
	_, err = h.s.DeviceList(h.ctx, "nobody", 0)
	wantErr(t, "DeviceList(unknown, 0)", err, store.ErrNotFound)
	_, err = h.s.DeviceList(h.ctx, "alice", 2)
	wantErr(t, "DeviceList(alice, 2)", err, store.ErrNotFound)
	_, err = h.s.DeviceList(h.ctx, "alice", ^uint64(0))
	wantErr(t, "DeviceList(alice, max)", err, store.ErrNotFound)
	_, err = h.s.Device(h.ctx, newDeviceID())
	wantErr(t, "Device(unknown)", err, store.ErrNotFound)
	err = h.s.AddPrekeys(h.ctx, newDeviceID(), prekeys(f.ids[0], 1, 1))
	wantErr(t, "AddPrekeys(unknown)", err, store.ErrNotFound)
	_, err = h.s.ClaimBundle(h.ctx, newDeviceID())
	wantErr(t, "ClaimBundle(unknown)", err, store.ErrNotFound)
	_, err = h.s.UpdateDeviceList(h.ctx, store.DeviceListUpdate{
		List: store.DeviceList{Username: "nobody", Version: 2}, Devices: f.Devices})
	wantErr(t, "UpdateDeviceList(unknown account)", err, store.ErrNotFound)
	if envs, err := h.s.Fetch(h.ctx, newDeviceID(), 0, 10); err != nil || len(envs) != 0 {
		t.Errorf("Fetch(unknown) = %d envelopes, %v; want none", len(envs), err)
	}
}

// update publishes version v of username's list with devices ids.
func (h *harness) update(username string, v uint64, devs []store.Device, pk map[store.DeviceID]store.PrekeyUpload) ([]store.DeviceID, error) {
	return h.s.UpdateDeviceList(h.ctx, store.DeviceListUpdate{
		List:    store.DeviceList{Username: username, Version: v, Signed: []byte{byte(v), 'l'}},
		Devices: devs,
		Prekeys: pk,
	})
}

func testDeviceListVersions(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	devs := f.Devices
	for v := uint64(2); v <= 4; v++ {
		id := newDeviceID()
		devs = append(devs, device("alice", id))
		removed, err := h.update("alice", v, devs, map[store.DeviceID]store.PrekeyUpload{id: prekeys(id, 1, 1)})
		if err != nil {
			t.Fatalf("UpdateDeviceList(v%d): %v", v, err)
		}
		if len(removed) != 0 {
			t.Errorf("UpdateDeviceList(v%d) removed %x, want none", v, removed)
		}
		if ot, pq := h.counts(id); ot != 1 || pq != 1 {
			t.Errorf("prekeys of the added device = %d, %d, want 1, 1", ot, pq)
		}
	}
	// Every version stays readable, unchanged: the log is append-only.
	l, err := h.s.DeviceList(h.ctx, "alice", 1)
	if err != nil || !bytes.Equal(l.Signed, f.List.Signed) {
		t.Errorf("DeviceList(1) = %+v, %v; want the registration's list", l, err)
	}
	for v := uint64(2); v <= 4; v++ {
		l, err := h.s.DeviceList(h.ctx, "alice", v)
		if err != nil || l.Version != v || !bytes.Equal(l.Signed, []byte{byte(v), 'l'}) {
			t.Errorf("DeviceList(%d) = %+v, %v", v, l, err)
		}
	}
	l, err = h.s.DeviceList(h.ctx, "alice", 0)
	if err != nil || l.Version != 4 {
		t.Errorf("DeviceList(0) = %+v, %v; want version 4", l, err)
	}
	a, err := h.s.Account(h.ctx, "alice")
	if err != nil || a.ListVersion != 4 {
		t.Errorf("Account.ListVersion = %+v, %v; want 4", a, err)
	}
	ds, err := h.s.Devices(h.ctx, "alice")
	if err != nil || len(ds) != 4 {
		t.Errorf("Devices = %d, %v; want 4", len(ds), err)
	}
}

func testDeviceListConflict(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	if _, err := h.update("alice", 2, f.Devices, nil); err != nil {
		t.Fatalf("UpdateDeviceList(v2): %v", err)
	}
	for _, v := range []uint64{0, 1, 2, 4, 100, ^uint64(0)} {
		_, err := h.update("alice", v, f.Devices, nil)
		wantErr(t, "UpdateDeviceList with version "+itoa(v)+" over 2", err, store.ErrVersionConflict)
	}
	l, err := h.s.DeviceList(h.ctx, "alice", 0)
	if err != nil || l.Version != 2 {
		t.Errorf("DeviceList(0) after refused updates = %+v, %v; want version 2", l, err)
	}
	if _, err := h.s.DeviceList(h.ctx, "alice", 4); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused version 4 is readable: %v", err)
	}
}

func itoa(v uint64) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
		if v == 0 {
			return string(b)
		}
	}
}

// testDeviceListConcurrentUpdates races updates to the same next version,
// each adding a different device: exactly one wins, and only its device
// is added.
func testDeviceListConcurrentUpdates(t *testing.T, h *harness) {
	const racers = 16
	f := h.register("alice", 1)
	var wg sync.WaitGroup
	errs := make([]error, racers)
	added := make([]store.DeviceID, racers)
	for i := range racers {
		added[i] = newDeviceID()
		devs := append(slices.Clone(f.Devices), device("alice", added[i]))
		wg.Go(func() { _, errs[i] = h.update("alice", 2, devs, nil) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("updates %d and %d both published version 2", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrVersionConflict):
			t.Errorf("losing update: %v, want ErrVersionConflict", err)
		}
	}
	if winner < 0 {
		t.Fatal("no update won")
	}
	ds, err := h.s.Devices(h.ctx, "alice")
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if got, want := deviceIDs(ds), sortedIDs([]store.DeviceID{f.ids[0], added[winner]}); !slices.Equal(got, want) {
		t.Errorf("devices after the race = %x, want the first and the winner's %x", got, want)
	}
}

func testDeviceListRemovesDevices(t *testing.T, h *harness) {
	f := h.register("alice", 3)
	keep, gone1, gone2 := f.ids[0], f.ids[1], f.ids[2]
	h.enqueue(envelope(gone1, "to a removed device"), envelope(keep, "to a kept device"))
	fresh := newDeviceID()
	removed, err := h.update("alice", 2,
		[]store.Device{device("alice", keep), device("alice", fresh)},
		map[store.DeviceID]store.PrekeyUpload{fresh: prekeys(fresh, 2, 2)})
	if err != nil {
		t.Fatalf("UpdateDeviceList: %v", err)
	}
	if got, want := sortedIDs(removed), sortedIDs([]store.DeviceID{gone1, gone2}); !slices.Equal(got, want) {
		t.Errorf("removed = %x, want %x", got, want)
	}
	for _, id := range []store.DeviceID{gone1, gone2} {
		if _, err := h.s.Device(h.ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Device(removed): %v, want ErrNotFound", err)
		}
		if _, err := h.s.ClaimBundle(h.ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ClaimBundle(removed): %v, want ErrNotFound (its prekeys are gone)", err)
		}
		if envs := h.fetchAll(id); len(envs) != 0 {
			t.Errorf("queue of a removed device still holds %d envelopes", len(envs))
		}
		err := h.s.Enqueue(h.ctx, store.Send{MaxQueue: 100, Envelopes: []store.Envelope{envelope(id, "late")}})
		var ude *store.UnknownDeviceError
		if !errors.As(err, &ude) {
			t.Errorf("Enqueue to a removed device: %v, want *UnknownDeviceError", err)
		}
	}
	if envs := h.fetchAll(keep); len(envs) != 1 {
		t.Errorf("kept device's queue holds %d envelopes, want 1", len(envs))
	}
	if ot, pq := h.counts(keep); ot != 5 || pq != 3 {
		t.Errorf("kept device's prekeys = %d, %d, want 5, 3 (untouched)", ot, pq)
	}
	if ot, pq := h.counts(fresh); ot != 2 || pq != 2 {
		t.Errorf("added device's prekeys = %d, %d, want 2, 2", ot, pq)
	}
	// A removed device's id may come back in a later version, with
	// nothing of its old queue or prekeys.
	if _, err := h.update("alice", 3,
		[]store.Device{device("alice", keep), device("alice", fresh), device("alice", gone1)}, nil); err != nil {
		t.Fatalf("UpdateDeviceList re-adding a removed device: %v", err)
	}
	if envs := h.fetchAll(gone1); len(envs) != 0 {
		t.Errorf("re-added device has %d old envelopes", len(envs))
	}
	if ot, pq := h.counts(gone1); ot != 0 || pq != 0 {
		t.Errorf("re-added device has old prekeys: %d, %d", ot, pq)
	}
}

// testDeviceIDs: each username gets its own account's current device ids,
// in the order asked, whatever the number of names; an unknown account has
// none; a removed device is gone at once.
func testDeviceIDs(t *testing.T, h *harness) {
	alice := h.register("alice", 3)
	bob := h.register("bob", 1)
	carol := h.register("carol", 2)
	want := map[string][]store.DeviceID{
		"alice": sortedIDs(alice.ids), "bob": sortedIDs(bob.ids), "carol": sortedIDs(carol.ids), "nobody": nil,
	}
	for _, names := range [][]string{
		{"alice"}, {"bob", "alice"}, {"alice", "alice"}, {"nobody", "carol"},
		{"carol", "nobody", "bob", "alice", "bob"}, {},
	} {
		ids, err := h.s.DeviceIDs(h.ctx, names...)
		if err != nil {
			t.Fatalf("DeviceIDs(%q): %v", names, err)
		}
		if len(ids) != len(names) {
			t.Fatalf("DeviceIDs(%q) gave %d lists", names, len(ids))
		}
		for i, n := range names {
			if !slices.Equal(ids[i], want[n]) {
				t.Errorf("DeviceIDs(%q)[%d] (%s) = %x, want %x", names, i, n, ids[i], want[n])
			}
		}
	}
	if _, err := h.update("alice", 2, []store.Device{alice.Devices[0]}, nil); err != nil {
		t.Fatal(err)
	}
	ids, err := h.s.DeviceIDs(h.ctx, "alice")
	if err != nil || len(ids) != 1 || !slices.Equal(ids[0], []store.DeviceID{alice.Devices[0].ID}) {
		t.Fatalf("after removing two devices: %x, %v; want only %x", ids, err, alice.Devices[0].ID)
	}
}

// testDeviceListAddsTakenDevice adds a device id that another account
// holds: ErrDeviceExists, and nothing of the update is applied.
func testDeviceListAddsTakenDevice(t *testing.T, h *harness) {
	alice := h.register("alice", 2)
	bob := h.register("bob", 1)
	_, err := h.update("alice", 2, []store.Device{alice.Devices[0], device("alice", bob.ids[0])}, nil)
	wantErr(t, "UpdateDeviceList adding another account's device", err, store.ErrDeviceExists)
	l, err := h.s.DeviceList(h.ctx, "alice", 0)
	if err != nil || l.Version != 1 {
		t.Errorf("DeviceList after refused update = %+v, %v; want version 1", l, err)
	}
	if _, err := h.s.Device(h.ctx, alice.ids[1]); err != nil {
		t.Errorf("device the refused update would have removed: %v", err)
	}
	d, err := h.s.Device(h.ctx, bob.ids[0])
	if err != nil || d.Username != "bob" {
		t.Errorf("bob's device = %+v, %v; want bob's", d, err)
	}
}

func testTouchDevice(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	at := base.Add(time.Hour)
	if err := h.s.TouchDevice(h.ctx, f.ids[0], at); err != nil {
		t.Fatalf("TouchDevice: %v", err)
	}
	d, err := h.s.Device(h.ctx, f.ids[0])
	if err != nil || !d.LastSeen.Equal(at) || !d.Added.Equal(base) {
		t.Errorf("Device after TouchDevice = %+v, %v; want LastSeen %v", d, err, at)
	}
}

func testDeleteAccount(t *testing.T, h *harness) {
	alice := h.register("alice", 2)
	bob := h.register("bob", 1)
	for _, id := range alice.ids {
		h.enqueue(envelope(id, "hello"))
	}
	h.enqueue(envelope(bob.ids[0], "hello bob"))
	if _, err := h.update("alice", 2, alice.Devices, nil); err != nil {
		t.Fatalf("UpdateDeviceList: %v", err)
	}
	if err := h.s.DeleteAccount(h.ctx, "alice"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	assertNoAccount(t, h, alice)
	if _, err := h.s.DeviceList(h.ctx, "alice", 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old device list after DeleteAccount: %v, want ErrNotFound", err)
	}
	for _, id := range alice.ids {
		if envs := h.fetchAll(id); len(envs) != 0 {
			t.Errorf("queue after DeleteAccount holds %d envelopes", len(envs))
		}
		if _, err := h.s.ClaimBundle(h.ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ClaimBundle after DeleteAccount: %v, want ErrNotFound", err)
		}
	}
	// Other accounts are untouched.
	if envs := h.fetchAll(bob.ids[0]); len(envs) != 1 {
		t.Errorf("bob's queue holds %d envelopes, want 1", len(envs))
	}
	// The device ids are free again, with nothing left over; the username
	// is not: its device lists are in the transparency log for good.
	again := alice
	if err := h.s.CreateAccount(h.ctx, again.NewAccount); !errors.Is(err, store.ErrAccountExists) || !errors.Is(err, store.ErrUsernameInLog) {
		t.Fatalf("CreateAccount of a deleted username: %v, want ErrAccountExists and ErrUsernameInLog", err)
	}
	again = newAccount(t, "alice2", 0)
	for _, d := range alice.Devices {
		again.Devices = append(again.Devices, device("alice2", d.ID))
	}
	again.ids = alice.ids
	if err := h.s.CreateAccount(h.ctx, again.NewAccount); err != nil {
		t.Fatalf("CreateAccount with a deleted account's devices: %v", err)
	}
	for _, id := range alice.ids {
		if ot, pq := h.counts(id); ot != 0 || pq != 0 {
			t.Errorf("re-registered device has old prekeys: %d, %d", ot, pq)
		}
		if n := h.queueLength(id); n != 0 {
			t.Errorf("re-registered device has %d old envelopes", n)
		}
	}
	if _, err := h.s.DeviceList(h.ctx, "alice", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old version 2 visible after deletion: %v", err)
	}
}

func deviceIDs(ds []store.Device) []store.DeviceID {
	var ids []store.DeviceID
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}
