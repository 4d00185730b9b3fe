package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

// RunTransparency runs the conformance suite of store.Transparency
// (docs/transparency.md, "Server"). newStore has the shape Run takes; the
// stores it opens must implement store.Transparency.
//
// Choices the documentation leaves open that every engine must agree on
// ("suite:"):
//
//   - suite: a refused commit writes nothing: no epoch, no value, and the
//     pending updates stay pending.
//   - suite: two stores opened on the same location that both hold the
//     sequencer role (possible only where the engine cannot guard across
//     processes) still cannot both commit one epoch.
func RunTransparency(t *testing.T, newStore func(t *testing.T) (open func() store.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *tharness)
	}{
		{"DirectoryWritesQueueUpdates", testKTDirectoryWritesQueue},
		{"FailedDirectoryWritesQueueNothing", testKTFailedWritesQueueNothing},
		{"ConcurrentUpdatesAllQueued", testKTConcurrentUpdatesQueued},
		{"CommitEpochs", testKTCommitEpochs},
		{"RefusedCommitWritesNothing", testKTRefusedCommit},
		{"SequencerRole", testKTSequencerRole},
		{"TwoStoresCannotForkTheLog", testKTTwoStores},
		{"DeletedUsernameStaysTaken", testKTDeletedUsername},
		{"Cosignatures", testKTCosignatures},
		{"Durability", testKTDurability},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, open: newStore(t), ctx: t.Context(), closed: map[store.Store]bool{}}
			h.s = h.openStore()
			if _, ok := h.s.(store.Transparency); !ok {
				t.Fatalf("%T does not implement store.Transparency", h.s)
			}
			tc.fn(t, &tharness{h})
		})
	}
}

type tharness struct{ *harness }

func (h *tharness) kt() store.Transparency { return h.s.(store.Transparency) }

func (h *tharness) pending() []store.KTUpdate {
	h.t.Helper()
	us, err := h.kt().PendingKT(h.ctx, 0, 1000)
	if err != nil {
		h.t.Fatalf("PendingKT: %v", err)
	}
	n, err := h.kt().PendingKTCount(h.ctx)
	if err != nil || n != len(us) {
		h.t.Fatalf("PendingKTCount = %d, %v; PendingKT returned %d", n, err, len(us))
	}
	return us
}

func (h *tharness) acquire() store.KTSequencer {
	h.t.Helper()
	q, err := h.kt().AcquireKTSequencer(h.ctx)
	if err != nil {
		h.t.Fatalf("AcquireKTSequencer: %v", err)
	}
	h.t.Cleanup(q.Release)
	return q
}

// commitOf builds the commit of epoch n sequencing us, with distinct
// fake encodings so a mix-up shows.
func commitOf(n uint64, us []store.KTUpdate) store.KTCommit {
	c := store.KTCommit{Epoch: store.KTEpoch{
		Number:     n,
		Epoch:      fmt.Appendf(nil, "epoch-%d-%d", n, len(us)),
		Entry:      fmt.Appendf(nil, "entry-%d", n),
		Checkpoint: fmt.Appendf(nil, "checkpoint-%d", n+1),
	}}
	for _, u := range us {
		v := store.KTValue{Username: u.Username, Version: u.Version, Epoch: n, Value: u.Value}
		primitives.Random(v.Opening[:])
		c.Values = append(c.Values, v)
		c.Consumed = append(c.Consumed, u.Seq)
	}
	return c
}

func (h *tharness) commit(q store.KTSequencer, n uint64, us []store.KTUpdate) store.KTCommit {
	h.t.Helper()
	c := commitOf(n, us)
	if err := q.CommitKTEpoch(h.ctx, c); err != nil {
		h.t.Fatalf("CommitKTEpoch(%d): %v", n, err)
	}
	return c
}

func (h *tharness) size() uint64 {
	h.t.Helper()
	n, err := h.kt().KTSize(h.ctx)
	if err != nil {
		h.t.Fatalf("KTSize: %v", err)
	}
	return n
}

func sameUpdate(u store.KTUpdate, name string, version uint32, value []byte) bool {
	return u.Username == name && u.Version == version && bytes.Equal(u.Value, value)
}

// testKTDirectoryWritesQueue: every registration and device-list update
// queues its list, as KT version = list version - 1, in commit order.
func testKTDirectoryWritesQueue(t *testing.T, h *tharness) {
	alice := h.register("alice", 1)
	if _, err := h.update("alice", 2, alice.Devices, nil); err != nil {
		t.Fatal(err)
	}
	h.register("bob", 1)
	if _, err := h.update("alice", 3, alice.Devices, nil); err != nil {
		t.Fatal(err)
	}
	us := h.pending()
	want := []struct {
		name    string
		version uint32
		value   []byte
	}{
		{"alice", 0, []byte("list-1-alice")},
		{"alice", 1, []byte{2, 'l'}},
		{"bob", 0, []byte("list-1-bob")},
		{"alice", 2, []byte{3, 'l'}},
	}
	if len(us) != len(want) {
		t.Fatalf("%d pending updates, want %d: %+v", len(us), len(want), us)
	}
	for i, w := range want {
		if !sameUpdate(us[i], w.name, w.version, w.value) {
			t.Errorf("pending[%d] = %q v%d %q, want %q v%d %q", i, us[i].Username, us[i].Version, us[i].Value, w.name, w.version, w.value)
		}
		if i > 0 && us[i].Seq <= us[i-1].Seq {
			t.Errorf("pending seqs not increasing: %d then %d", us[i-1].Seq, us[i].Seq)
		}
	}
	if lim, err := h.kt().PendingKT(h.ctx, 0, 2); err != nil || len(lim) != 2 || lim[1].Seq != us[1].Seq {
		t.Errorf("PendingKT(limit 2) = %d updates, %v", len(lim), err)
	}
	// Reading on after a Seq: the sequencer's prefetch.
	if rest, err := h.kt().PendingKT(h.ctx, us[1].Seq, 10); err != nil || len(rest) != len(us)-2 || rest[0].Seq != us[2].Seq {
		t.Errorf("PendingKT(after %d) = %+v, %v; want from the third update", us[1].Seq, rest, err)
	}
	if rest, err := h.kt().PendingKT(h.ctx, us[len(us)-1].Seq, 10); err != nil || len(rest) != 0 {
		t.Errorf("PendingKT(after the last) = %+v, %v; want none", rest, err)
	}
	if rest, err := h.kt().PendingKT(h.ctx, math.MaxUint64, 10); err != nil || len(rest) != 0 {
		t.Errorf("PendingKT(after MaxUint64) = %+v, %v; want none", rest, err)
	}
}

// testKTFailedWritesQueueNothing: a directory write that fails queues no
// transparency update (the two are one transaction), one that succeeds
// always queues one.
func testKTFailedWritesQueueNothing(t *testing.T, h *tharness) {
	alice := h.register("alice", 1)
	bob := h.register("bob", 1)
	base := len(h.pending())
	if base != 2 {
		t.Fatalf("%d pending after two registrations", base)
	}
	// A version conflict.
	if _, err := h.update("alice", 3, alice.Devices, nil); !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("skipping a version: %v", err)
	}
	// A device another account holds: fails after the list checks, in
	// the middle of the transaction.
	if _, err := h.update("alice", 2, append(alice.Devices, device("alice", bob.ids[0])), nil); !errors.Is(err, store.ErrDeviceExists) {
		t.Fatalf("adding bob's device: %v", err)
	}
	// A taken username and a taken device at registration.
	if err := h.s.CreateAccount(h.ctx, newAccount(t, "alice", 1).NewAccount); !errors.Is(err, store.ErrAccountExists) {
		t.Fatalf("duplicate registration: %v", err)
	}
	carol := newAccount(t, "carol", 1)
	carol.Devices[0].ID = bob.ids[0]
	carol.Prekeys = nil
	if err := h.s.CreateAccount(h.ctx, carol.NewAccount); !errors.Is(err, store.ErrDeviceExists) {
		t.Fatalf("registration with a taken device: %v", err)
	}
	// An invite that is not there.
	dave := newAccount(t, "dave", 1)
	dave.InviteHash = []byte("no such invite")
	if err := h.s.CreateAccount(h.ctx, dave.NewAccount); !errors.Is(err, store.ErrInviteInvalid) {
		t.Fatalf("registration with a bad invite: %v", err)
	}
	if us := h.pending(); len(us) != base {
		t.Fatalf("failed writes queued updates: %+v", us[base:])
	}
	if _, err := h.update("alice", 2, alice.Devices, nil); err != nil {
		t.Fatal(err)
	}
	if us := h.pending(); len(us) != base+1 || !sameUpdate(us[base], "alice", 1, []byte{2, 'l'}) {
		t.Fatalf("after a good update: %+v", us)
	}
}

// testKTConcurrentUpdatesQueued: concurrent updates of several accounts
// queue exactly the updates that succeeded, each account's versions in
// order.
func testKTConcurrentUpdatesQueued(t *testing.T, h *tharness) {
	const accounts, writers, rounds = 4, 3, 5
	fs := make([]fixture, accounts)
	for i := range fs {
		fs[i] = h.register(fmt.Sprintf("user%d", i), 1)
	}
	var (
		mu sync.Mutex
		ok = map[string]int{}
		wg sync.WaitGroup
	)
	for i := range accounts {
		for range writers {
			wg.Go(func() {
				name := fs[i].Account.Username
				for range rounds {
					acct, err := h.s.Account(h.ctx, name)
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := h.update(name, acct.ListVersion+1, fs[i].Devices, nil); err == nil {
						mu.Lock()
						ok[name]++
						mu.Unlock()
					} else if !errors.Is(err, store.ErrVersionConflict) {
						t.Error(err)
					}
				}
			})
		}
	}
	wg.Wait()
	us := h.pending()
	next := map[string]uint32{}
	for _, u := range us {
		if u.Version != next[u.Username] {
			t.Fatalf("%q: pending version %d, want %d (in order)", u.Username, u.Version, next[u.Username])
		}
		if u.Version > 0 && !bytes.Equal(u.Value, []byte{byte(u.Version + 1), 'l'}) {
			t.Errorf("%q version %d: value %q", u.Username, u.Version, u.Value)
		}
		next[u.Username]++
	}
	for i := range fs {
		name := fs[i].Account.Username
		acct, err := h.s.Account(h.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if int(next[name]) != ok[name]+1 || uint64(next[name]) != acct.ListVersion {
			t.Errorf("%q: %d pending, %d updates succeeded, list version %d", name, next[name], ok[name], acct.ListVersion)
		}
	}
}

func testKTCommitEpochs(t *testing.T, h *tharness) {
	alice := h.register("alice", 1)
	h.register("bob", 1)
	if n := h.size(); n != 0 {
		t.Fatalf("KTSize of a new store = %d", n)
	}
	q := h.acquire()
	us := h.pending()
	// Epoch 0 sequences alice's first version only.
	c0 := h.commit(q, 0, us[:1])
	if n := h.size(); n != 1 {
		t.Fatalf("KTSize = %d, want 1", n)
	}
	if rest := h.pending(); len(rest) != 1 || rest[0].Seq != us[1].Seq {
		t.Fatalf("pending after epoch 0: %+v", rest)
	}
	if _, err := h.update("alice", 2, alice.Devices, nil); err != nil {
		t.Fatal(err)
	}
	// An empty epoch, then one with the rest.
	h.commit(q, 1, nil)
	c2 := h.commit(q, 2, h.pending())
	if rest := h.pending(); len(rest) != 0 {
		t.Fatalf("pending after epoch 2: %+v", rest)
	}
	es, err := h.kt().KTEpochs(h.ctx, 0, 10)
	if err != nil || len(es) != 3 {
		t.Fatalf("KTEpochs = %d epochs, %v", len(es), err)
	}
	for i, e := range es {
		if e.Number != uint64(i) || !bytes.Equal(e.Entry, fmt.Appendf(nil, "entry-%d", i)) || !bytes.Equal(e.Checkpoint, fmt.Appendf(nil, "checkpoint-%d", i+1)) {
			t.Errorf("epoch %d: %+v", i, e)
		}
	}
	if !bytes.Equal(es[0].Epoch, c0.Epoch.Epoch) || !bytes.Equal(es[2].Epoch, c2.Epoch.Epoch) {
		t.Error("epoch encodings changed")
	}
	if es, err := h.kt().KTEpochs(h.ctx, 2, 10); err != nil || len(es) != 1 || es[0].Number != 2 {
		t.Errorf("KTEpochs from 2: %+v, %v", es, err)
	}
	if es, err := h.kt().KTEpochs(h.ctx, 1, 1); err != nil || len(es) != 1 || es[0].Number != 1 {
		t.Errorf("KTEpochs from 1 limit 1: %+v, %v", es, err)
	}
	if es, err := h.kt().KTEpochs(h.ctx, 3, 10); err != nil || len(es) != 0 {
		t.Errorf("KTEpochs past the end: %+v, %v", es, err)
	}

	// Greatest version as of each size.
	for _, tc := range []struct {
		name    string
		size    uint64
		version uint32
		found   bool
	}{
		{"alice", 0, 0, false},
		{"alice", 1, 0, true},
		{"alice", 2, 0, true},
		{"alice", 3, 1, true},
		{"alice", 100, 1, true},
		{"bob", 2, 0, false},
		{"bob", 3, 0, true},
		{"carol", 3, 0, false},
	} {
		v, err := h.kt().KTGreatest(h.ctx, tc.name, tc.size)
		if !tc.found {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("KTGreatest(%q, %d) = %+v, %v; want ErrNotFound", tc.name, tc.size, v, err)
			}
			continue
		}
		if err != nil || v.Version != tc.version || v.Username != tc.name {
			t.Errorf("KTGreatest(%q, %d) = %+v, %v; want version %d", tc.name, tc.size, v, err, tc.version)
		}
	}
	v, err := h.kt().KTGreatest(h.ctx, "alice", 3)
	if err != nil {
		t.Fatal(err)
	}
	want := c2.Values[len(c2.Values)-1]
	if want.Username != "alice" {
		want = c2.Values[0]
	}
	if v.Opening != want.Opening || !bytes.Equal(v.Value, []byte{2, 'l'}) || v.Epoch != 2 {
		t.Errorf("alice's greatest: %+v, want %+v", v, want)
	}
	vs, err := h.kt().KTValues(h.ctx, "alice", 0, 5, 3)
	if err != nil || len(vs) != 2 || vs[0].Version != 0 || vs[1].Version != 1 || vs[0].Opening != c0.Values[0].Opening ||
		!bytes.Equal(vs[0].Value, []byte("list-1-alice")) || vs[0].Epoch != 0 {
		t.Errorf("KTValues(alice, 0..5, 3) = %+v, %v", vs, err)
	}
	if vs, err := h.kt().KTValues(h.ctx, "alice", 0, 5, 2); err != nil || len(vs) != 1 {
		t.Errorf("KTValues(alice, 0..5, size 2) = %+v, %v", vs, err)
	}
	if vs, err := h.kt().KTValues(h.ctx, "alice", 1, 1, 3); err != nil || len(vs) != 1 || vs[0].Version != 1 {
		t.Errorf("KTValues(alice, 1..1) = %+v, %v", vs, err)
	}
}

func testKTRefusedCommit(t *testing.T, h *tharness) {
	h.register("alice", 1)
	h.register("bob", 1)
	q := h.acquire()
	us := h.pending()
	unchanged := func(what string, size uint64, pending int) {
		t.Helper()
		if n := h.size(); n != size {
			t.Errorf("%s: KTSize = %d, want %d", what, n, size)
		}
		if p := h.pending(); len(p) != pending {
			t.Errorf("%s: %d pending, want %d", what, len(p), pending)
		}
		if _, err := h.kt().KTGreatest(h.ctx, "bob", 100); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: bob has a sequenced version: %v", what, err)
		}
	}
	// Not the next epoch.
	if err := q.CommitKTEpoch(h.ctx, commitOf(1, us)); !errors.Is(err, store.ErrKTConflict) {
		t.Fatalf("epoch 1 of an empty log: %v, want ErrKTConflict", err)
	}
	unchanged("skipped epoch", 0, 2)
	// A consumed update that is not pending.
	c := commitOf(0, us)
	c.Consumed = append(c.Consumed, us[1].Seq+1000)
	if err := q.CommitKTEpoch(h.ctx, c); !errors.Is(err, store.ErrKTConflict) {
		t.Fatalf("consuming a missing update: %v, want ErrKTConflict", err)
	}
	unchanged("missing update", 0, 2)
	h.commit(q, 0, us[:1])
	// The same epoch again, and a value sequenced twice.
	if err := q.CommitKTEpoch(h.ctx, commitOf(0, us[1:])); !errors.Is(err, store.ErrKTConflict) {
		t.Fatalf("epoch 0 twice: %v, want ErrKTConflict", err)
	}
	unchanged("epoch twice", 1, 1)
	c = commitOf(1, us[1:])
	c.Values = append(c.Values, store.KTValue{Username: "alice", Version: 0, Epoch: 1, Value: []byte("another")})
	if err := q.CommitKTEpoch(h.ctx, c); !errors.Is(err, store.ErrKTConflict) {
		t.Fatalf("a version sequenced twice: %v, want ErrKTConflict", err)
	}
	unchanged("value twice", 1, 1)
	v, err := h.kt().KTGreatest(h.ctx, "alice", 100)
	if err != nil || !bytes.Equal(v.Value, []byte("list-1-alice")) {
		t.Fatalf("alice's sequenced value after refused commits: %+v, %v", v, err)
	}
}

func testKTSequencerRole(t *testing.T, h *tharness) {
	h.register("alice", 1)
	q := h.acquire()
	if _, err := h.kt().AcquireKTSequencer(h.ctx); !errors.Is(err, store.ErrKTSequencerHeld) {
		t.Fatalf("a second AcquireKTSequencer: %v, want ErrKTSequencerHeld", err)
	}
	h.commit(q, 0, nil)
	q.Release()
	q.Release()
	if err := q.CommitKTEpoch(h.ctx, commitOf(1, nil)); !errors.Is(err, store.ErrKTSequencerLost) {
		t.Fatalf("commit after Release: %v, want ErrKTSequencerLost", err)
	}
	if n := h.size(); n != 1 {
		t.Fatalf("KTSize = %d after a released commit", n)
	}
	q2 := h.acquire()
	h.commit(q2, 1, h.pending())
}

// testKTTwoStores: a second store on the same location either cannot take
// the role or, if it can (one process per SQLite file is the engine's
// documented assumption), cannot commit an epoch the first committed.
func testKTTwoStores(t *testing.T, h *tharness) {
	h.register("alice", 1)
	other := h.openStore()
	okt := other.(store.Transparency)
	q := h.acquire()
	q2, err := okt.AcquireKTSequencer(h.ctx)
	if errors.Is(err, store.ErrKTSequencerHeld) {
		q.Release()
		// Once released, the other store takes over.
		if q2, err = okt.AcquireKTSequencer(h.ctx); err != nil {
			t.Fatalf("AcquireKTSequencer after the holder released: %v", err)
		}
		defer q2.Release()
		if err := q2.CommitKTEpoch(h.ctx, commitOf(0, h.pending())); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Release()
	us := h.pending()
	h.commit(q, 0, us)
	if err := q2.CommitKTEpoch(h.ctx, commitOf(0, us)); !errors.Is(err, store.ErrKTConflict) {
		t.Fatalf("the second store committed epoch 0 again: %v", err)
	}
}

// testKTDeletedUsername: the transparency history outlives the account,
// so the username cannot be registered again, and a list published just
// before the deletion is still sequenced.
func testKTDeletedUsername(t *testing.T, h *tharness) {
	alice := h.register("alice", 1)
	q := h.acquire()
	h.commit(q, 0, h.pending())
	if _, err := h.update("alice", 2, alice.Devices, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.s.DeleteAccount(h.ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	us := h.pending()
	if len(us) != 1 || !sameUpdate(us[0], "alice", 1, []byte{2, 'l'}) {
		t.Fatalf("pending after the deletion: %+v", us)
	}
	err := h.s.CreateAccount(h.ctx, newAccount(t, "alice", 1).NewAccount)
	if !errors.Is(err, store.ErrAccountExists) || !errors.Is(err, store.ErrUsernameInLog) {
		t.Fatalf("re-registering a deleted username: %v", err)
	}
	h.commit(q, 1, us)
	if v, err := h.kt().KTGreatest(h.ctx, "alice", 2); err != nil || v.Version != 1 {
		t.Fatalf("deleted account's greatest: %+v, %v", v, err)
	}
	// A username never used is free.
	h.register("bob", 1)
}

func testKTCosignatures(t *testing.T, h *tharness) {
	k := h.kt()
	if cs, err := k.KTCosignatures(h.ctx, 1); err != nil || len(cs) != 0 {
		t.Fatalf("cosignatures of a new store: %+v, %v", cs, err)
	}
	w := func(name, line string) store.Cosignature { return store.Cosignature{Witness: name, Line: []byte(line)} }
	if err := k.AddKTCosignatures(h.ctx, 3, []store.Cosignature{w("w.example/b", "b1"), w("w.example/a", "a1")}); err != nil {
		t.Fatal(err)
	}
	// A second cosignature by a witness keeps the first.
	if err := k.AddKTCosignatures(h.ctx, 3, []store.Cosignature{w("w.example/a", "a2"), w("w.example/c", "c1")}); err != nil {
		t.Fatal(err)
	}
	if err := k.AddKTCosignatures(h.ctx, 4, []store.Cosignature{w("w.example/a", "a4")}); err != nil {
		t.Fatal(err)
	}
	cs, err := k.KTCosignatures(h.ctx, 3)
	if err != nil || len(cs) != 3 || !sameCosig(cs[0], w("w.example/a", "a1")) ||
		!sameCosig(cs[1], w("w.example/b", "b1")) || !sameCosig(cs[2], w("w.example/c", "c1")) {
		t.Fatalf("KTCosignatures(3) = %q, %v", cs, err)
	}
	if err := k.AddKTCosignatures(h.ctx, 0, []store.Cosignature{w("w.example/a", "a0")}); err == nil {
		t.Error("cosignatures of a log of 0 epochs were accepted")
	}
}

func sameCosig(a, b store.Cosignature) bool {
	return a.Witness == b.Witness && bytes.Equal(a.Line, b.Line)
}

func testKTDurability(t *testing.T, h *tharness) {
	h.register("alice", 1)
	h.register("bob", 1)
	q := h.acquire()
	us := h.pending()
	c := h.commit(q, 0, us[:1])
	if err := h.kt().AddKTCosignatures(h.ctx, 1, []store.Cosignature{{Witness: "w", Line: []byte("line")}}); err != nil {
		t.Fatal(err)
	}
	q.Release()
	h.reopen()
	if n := h.size(); n != 1 {
		t.Fatalf("KTSize after reopening = %d", n)
	}
	es, err := h.kt().KTEpochs(h.ctx, 0, 10)
	if err != nil || len(es) != 1 || !bytes.Equal(es[0].Epoch, c.Epoch.Epoch) {
		t.Fatalf("epochs after reopening: %+v, %v", es, err)
	}
	if p := h.pending(); len(p) != 1 || !sameUpdate(p[0], "bob", 0, []byte("list-1-bob")) {
		t.Fatalf("pending after reopening: %+v", p)
	}
	if v, err := h.kt().KTGreatest(h.ctx, "alice", 1); err != nil || v.Opening != c.Values[0].Opening {
		t.Fatalf("alice after reopening: %+v, %v", v, err)
	}
	if cs, err := h.kt().KTCosignatures(h.ctx, 1); err != nil || len(cs) != 1 {
		t.Fatalf("cosignatures after reopening: %+v, %v", cs, err)
	}
	q2 := h.acquire()
	h.commit(q2, 1, h.pending())
}
