package verify

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/primitives"
)

func wantKind(t *testing.T, err error, k Kind) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want a %v security error", err, k)
	}
	if !errors.Is(err, ErrSecurity) {
		t.Fatalf("%v does not match ErrSecurity", err)
	}
	if e.Kind != k {
		t.Fatalf("got %v (%v), want %v", e.Kind, err, k)
	}
	return e
}

func TestSearchFixedMonitorRoundTrip(t *testing.T) {
	l := newTestLog(t, 2, 2)
	for i := 0; i < 20; i++ {
		l.update(fmt.Sprintf("user%d", i), []byte(fmt.Sprintf("list %d v0", i)))
	}
	l.publish()
	for v := 1; v <= 9; v++ {
		l.update("alice", []byte(fmt.Sprintf("alice v%d", v)))
		if v%3 == 0 {
			l.publish()
		}
	}
	l.update("alice", []byte("alice v10"))
	l.publish()
	c := l.newClient()
	for _, label := range []string{"alice", "user3", "user19"} {
		f, err := c.lookup(roundTripHead(t, l.head(c.size())), label, l.search(label), l.now)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		n := len(l.values[label]) - 1
		if f.Version != uint32(n) || f.Greatest != uint32(n) || !bytes.Equal(f.Value, l.values[label][n].Value) {
			t.Fatalf("%s: got version %d %q", label, f.Version, f.Value)
		}
	}
	if _, err := c.lookup(l.head(c.size()), "nobody", l.search("nobody"), l.now); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrSecurity) {
		t.Fatalf("absent label: %v", err)
	}
	for v := uint32(0); v < uint32(len(l.values["alice"])); v++ {
		f, err := l.cfg.VerifyFixed(c.trusted, "alice", v, l.fixed("alice", v))
		if err != nil || f.Version != v || !bytes.Equal(f.Value, l.values["alice"][v].Value) {
			t.Fatalf("fixed %d: %v", v, err)
		}
	}
	if n := len(l.values["alice"]); n != 10 {
		t.Fatalf("alice has %d versions", n)
	}
	for _, from := range []uint32{0, 4, 9, 10} {
		r, err := l.cfg.VerifyMonitor(c.trusted, "alice", from, l.owner("alice"), l.monitor("alice", from))
		if err != nil || r.Greatest != 9 || len(r.Unexpected) != 0 {
			t.Fatalf("monitor from %d: %v", from, err)
		}
	}
	// The kept state survives a store round trip.
	kept, err := UnmarshalTrusted(c.trusted.Marshal())
	if err != nil || kept.Checkpoint != c.trusted.Checkpoint || kept.Entry != c.trusted.Entry || !bytes.Equal(kept.Note, c.trusted.Note) {
		t.Fatalf("Trusted round trip: %v", err)
	}
}

// TestKeySubstitutionDetected: a server that hands Bob another device list
// for Alice is caught — by Bob if it only alters the response, by Alice's
// monitoring if it really logs the list.
func TestKeySubstitutionDetected(t *testing.T) {
	l := newTestLog(t, 0, 0)
	l.update("alice", []byte("alice's real devices"))
	l.publish()
	bob := l.newClient()
	evil := []byte("alice's devices + the server's device")

	// 1. The value in the response is swapped.
	p := l.search("alice")
	p.Value = evil
	_, err := bob.lookup(l.head(0), "alice", p, l.now)
	wantKind(t, err, KeySubstituted)

	// 2. Swapped with a commitment made to match: the prefix proof no
	// longer gives the epoch's root.
	p = l.search("alice")
	p.Value = evil
	c := kt.Commit(p.Opening, "alice", p.Target, evil)
	for i, v := range p.Lookups() {
		if v == p.Target {
			p.Ladder[i].Commitment = &c
		}
	}
	_, err = bob.lookup(l.head(0), "alice", p, l.now)
	wantKind(t, err, BadProof)

	// 3. The server logs the substituted list as a new version: Bob
	// accepts it (it is in the log for everyone to see) and Alice's
	// monitoring reports the version she did not make, with its value.
	aliceOwn := l.owner("alice")
	l.update("alice", evil)
	l.publish()
	f, err := bob.lookup(l.head(0), "alice", l.search("alice"), l.now)
	if err != nil || !bytes.Equal(f.Value, evil) {
		t.Fatalf("logged substitution: %v", err)
	}
	alice := l.newClient()
	tr, err := alice.cfg.VerifyHead(nil, l.head(0), l.now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.cfg.VerifyMonitor(tr, "alice", 0, aliceOwn, l.monitor("alice", 0))
	e := wantKind(t, err, UnexpectedVersion)
	if e.Version != 1 || !bytes.Equal(e.Value, evil) || r == nil || len(r.Unexpected) != 1 {
		t.Fatalf("monitor reported %+v, %+v", e, r)
	}
}

// TestHiddenExtraVersionDetected: the server adds a device to Alice's list
// as a new version and hides that version from a searcher or from Alice.
func TestHiddenExtraVersionDetected(t *testing.T) {
	l := newTestLog(t, 0, 0)
	l.update("alice", []byte("v0"))
	l.update("alice", []byte("v1"))
	l.publish()
	honestOwner := l.owner("alice")
	l.update("alice", []byte("v1 + the server's device"))
	l.publish()
	tr, err := l.cfg.VerifyHead(nil, l.head(0), l.now)
	if err != nil {
		t.Fatal(err)
	}

	// 1. It claims version 1 is the greatest, with the tree's real proof
	// for the ladder of 1 (1, 5, 3, 2): the lookup of 2 is an inclusion.
	o := l.values["alice"][1]
	if !slices.Equal(kt.BinaryLadder(1), []uint32{1, 5, 3, 2}) {
		t.Fatalf("ladder of 1: %v", kt.BinaryLadder(1))
	}
	steps, pp := ladderFromTree(t, l, "alice", kt.BinaryLadder(1))
	p := &kt.SearchProof{Found: true, Greatest: 1, Target: 1, Opening: o.Opening, Value: o.Value, Ladder: steps, Prefix: *pp}
	_, err = l.cfg.VerifySearch(tr, "alice", p)
	if e := wantKind(t, err, HiddenVersion); e.Version != 2 {
		t.Fatalf("hidden version reported as %d", e.Version)
	}

	// 2. It forges the lookup of 2 as a non-inclusion: the proof no
	// longer gives the root.
	p.Ladder[3].Commitment = nil
	p.Prefix.Results[3] = kt.Result{Type: kt.NonInclusionParent, Depth: 0}
	_, err = l.cfg.VerifySearch(tr, "alice", p)
	wantKind(t, err, BadProof)

	// 3. The same lie to Alice's monitor: she learns version 2 exists.
	mp, err := l.prover().Monitor("alice", 2, 0, l.values["alice"][:3])
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.cfg.VerifyMonitor(tr, "alice", 0, honestOwner, mp)
	if e := wantKind(t, err, UnexpectedVersion); e.Version != 2 {
		t.Fatalf("monitor reported version %d", e.Version)
	}
	// And a monitor answer that claims greatest 1 over the real tree is
	// HiddenVersion, like the search.
	mp, err = l.prover().Monitor("alice", 2, 0, l.values["alice"][:3])
	if err != nil {
		t.Fatal(err)
	}
	mp.Greatest, mp.Opened = 1, mp.Opened[:2]
	s, pp2 := ladderFromTree(t, l, "alice", mp.Lookups())
	mp.Ladder, mp.Prefix = s, *pp2
	_, err = l.cfg.VerifyMonitor(tr, "alice", 0, honestOwner, mp)
	wantKind(t, err, HiddenVersion)
}

// TestFixedSearchOfHoleRejected: the server slips a version 9 of Alice's
// label into the tree above her greatest version 1 — a hole that her
// monitoring ladder (1, 5, 3, 2) never reaches — and serves it through a
// fixed-version search. Whatever the server does with its real tree, the
// ladder of 9 looks up 5 before stopping, which is not there: BadProof.
// A fixed search of a real older version verifies with the short ladder.
func TestFixedSearchOfHoleRejected(t *testing.T) {
	l := newTestLog(t, 0, 0)
	l.update("alice", []byte("v0"))
	l.update("alice", []byte("v1"))
	rogue := []byte("alice's devices + the server's device")
	opening := kt.NewOpening()
	idx, _ := kt.Index(l.vrf, "alice", 9)
	l.pending = append(l.pending, kt.Leaf{Index: idx, Commitment: kt.Commit(opening, "alice", 9, rogue)})
	l.publish()
	tr, err := l.cfg.VerifyHead(nil, l.head(0), l.now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.cfg.VerifyMonitor(tr, "alice", 0, l.owner("alice"), l.monitor("alice", 0)); err != nil {
		t.Fatalf("the owner's monitor does not reach the hole, and verifies: %v", err)
	}

	// Every ladder the server can present for 9: the walk of
	// BinaryLadder(9) as the tree answers it (1 present, 5 absent: the
	// verifier requires 5), or the lookup of 9 alone.
	for _, versions := range [][]uint32{kt.FixedLadder(9, 9), {9}, {1, 9}} {
		steps, pp := ladderFromTree(t, l, "alice", versions)
		p := &kt.SearchProof{Found: true, Fixed: true, Target: 9, Opening: opening, Value: rogue, Ladder: steps, Prefix: *pp}
		_, err = l.cfg.VerifyFixed(tr, "alice", 9, p)
		wantKind(t, err, BadProof)
	}

	// Version 0 of a label with ten versions: 1 is there, so the ladder of
	// 0 stops at once (0, 1), where the ladder of 9 has eight lookups.
	for v := 0; v <= 9; v++ {
		l.update("bob", []byte(fmt.Sprintf("bob v%d", v)))
	}
	l.publish()
	tr, err = l.cfg.VerifyHead(nil, l.head(0), l.now)
	if err != nil {
		t.Fatal(err)
	}
	p := l.fixed("bob", 0)
	f, err := l.cfg.VerifyFixed(tr, "bob", 0, p)
	if err != nil || f.Version != 0 || f.Greatest != 0 || !bytes.Equal(f.Value, l.values["bob"][0].Value) || len(p.Ladder) != 2 {
		t.Fatalf("fixed search of bob's version 0: %+v, %d lookups, %v", f, len(p.Ladder), err)
	}
	if _, err := l.cfg.VerifySearch(tr, "bob", p); err == nil {
		t.Fatal("a fixed-version search accepted as a greatest-version search")
	}
}

// ladderFromTree is what a lying server can build from its real tree for
// any list of versions: VRF proofs, tree commitments and a valid batched
// prefix proof.
func ladderFromTree(t *testing.T, l *testLog, label string, versions []uint32) ([]kt.LadderStep, *kt.PrefixProof) {
	t.Helper()
	pr := l.prover()
	steps := make([]kt.LadderStep, len(versions))
	idx := make([][kt.IndexSize]byte, len(versions))
	for i, v := range versions {
		idx[i], steps[i].Proof = kt.Index(l.vrf, label, v)
		if c, ok := pr.Tree.Lookup(idx[i]); ok {
			steps[i].Commitment = &c
		}
	}
	pp, err := pr.Tree.Prove(idx)
	if err != nil {
		t.Fatal(err)
	}
	return steps, pp
}

// TestStaleLatestDetected: the server answers with an older state of the
// log, in which Alice's previous device list was the newest.
func TestStaleLatestDetected(t *testing.T) {
	l := newTestLog(t, 0, 0)
	l.update("alice", []byte("old list"))
	l.publish()
	oldHead, oldProof := l.head(0), l.search("alice")
	oldTime := l.now
	l.update("alice", []byte("new list"))
	l.publish()

	// 1. A client that has seen the newer log: a rollback.
	bob := l.newClient()
	if _, err := bob.lookup(l.head(0), "alice", l.search("alice"), l.now); err != nil {
		t.Fatal(err)
	}
	_, err := bob.lookup(oldHead, "alice", oldProof, l.now)
	wantKind(t, err, Rollback)

	// 2. A new client whose clock is past the old epoch's freshness.
	carol := l.newClient()
	_, err = carol.lookup(oldHead, "alice", oldProof, oldTime.Add(DefaultMaxAge+time.Minute))
	wantKind(t, err, StaleLatest)

	// 3. The newest checkpoint with an older epoch's entry as "newest".
	h := l.head(0)
	h.Entry, _ = l.state.Log().Entry(0)
	h.Inclusion, _ = l.state.Log().InclusionProof(0, 2)
	_, err = l.newClient().lookup(h, "alice", oldProof, l.now)
	wantKind(t, err, StaleLatest)

	// 4. The newest head with a proof from the older tree.
	_, err = l.newClient().lookup(l.head(0), "alice", oldProof, l.now)
	wantKind(t, err, BadProof)

	// The honest answer still verifies for every client.
	if f, err := l.newClient().lookup(l.head(0), "alice", l.search("alice"), l.now); err != nil || string(f.Value) != "new list" {
		t.Fatalf("honest answer: %v", err)
	}
}

// TestLogRollbackDetected: after verifying a log of 5 epochs a client is
// shown the log of 3.
func TestLogRollbackDetected(t *testing.T) {
	l := newTestLog(t, 0, 0)
	var heads []*kt.Head
	for i := 0; i < 5; i++ {
		l.update(fmt.Sprintf("u%d", i), []byte("x"))
		l.publish()
		heads = append(heads, l.head(0))
	}
	c := l.newClient()
	tr, err := l.cfg.VerifyHead(nil, heads[4], l.now)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.cfg.VerifyHead(tr, heads[2], l.now)
	wantKind(t, err, Rollback)
	// Forward with a consistency proof is fine.
	tr3, err := l.cfg.VerifyHead(nil, heads[2], l.now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.cfg.VerifyHead(tr3, l.head(3), l.now); err != nil {
		t.Fatalf("forward: %v", err)
	}
	// Without one, it is not.
	_, err = l.cfg.VerifyHead(tr3, heads[4], l.now)
	wantKind(t, err, Fork)
	_ = c
}

// forkLog copies l's epochs up to n into a second log run with the same
// keys, which then diverges: the server keeps two histories.
func forkLog(t *testing.T, l *testLog, n int) *testLog {
	t.Helper()
	f := *l
	f.state = kt.NewState()
	f.values = map[string][]kt.Opened{}
	for label, vs := range l.values {
		f.values[label] = append([]kt.Opened(nil), vs...)
	}
	f.epochs = nil
	for i := 0; i < n; i++ {
		e := l.epochs[i]
		if _, err := f.state.Apply(&e); err != nil {
			t.Fatal(err)
		}
		f.epochs = append(f.epochs, e)
	}
	return &f
}

// TestForkedViewsDetected: the server shows Alice and Bob two different
// histories (in Bob's, Alice's list has the server's device; in Alice's it
// does not). Each view verifies on its own; comparing checkpoints (which
// clients piggyback in their messages) exposes the fork, and so does any
// later attempt to move a client from one history to the other.
func TestForkedViewsDetected(t *testing.T) {
	l := newTestLog(t, 0, 0)
	l.update("alice", []byte("alice v0"))
	l.publish()
	l.update("carol", []byte("carol v0"))
	l.publish()
	fork := forkLog(t, l, 2)
	l.update("alice", []byte("alice v0 + the server's device")) // Bob's history
	l.publish()
	fork.update("dave", []byte("dave v0")) // Alice's history, same size
	fork.publish()

	alice, bob := l.newClient(), l.newClient()
	if _, err := bob.lookup(l.head(0), "alice", l.search("alice"), l.now); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.lookup(fork.head(0), "alice", fork.search("alice"), fork.now); err != nil {
		t.Fatal(err)
	}
	// Bob's checkpoint reaches Alice in a message: same size, other root.
	err := alice.cfg.VerifyPeerCheckpoint(alice.trusted, bob.trusted.Note, nil)
	wantKind(t, err, Fork)

	// One more epoch in Bob's history: no consistency proof from Alice's
	// checkpoint exists; the server's best attempt fails.
	l.update("erin", []byte("erin v0"))
	l.publish()
	proof, _ := l.state.Log().ConsistencyProof(3, 4)
	err = alice.cfg.VerifyPeerCheckpoint(alice.trusted, l.signed, proof)
	wantKind(t, err, Fork)

	// The server moves Alice onto Bob's history.
	_, err = alice.lookup(l.head(3), "alice", l.search("alice"), l.now)
	wantKind(t, err, Fork)

	// Peers on the same history agree, at equal or different sizes.
	carol := l.newClient()
	if _, err := carol.lookup(l.head(0), "carol", l.search("carol"), l.now); err != nil {
		t.Fatal(err)
	}
	if err := bob.cfg.VerifyPeerCheckpoint(bob.trusted, carol.trusted.Note, proof); err != nil {
		t.Fatalf("honest peers: %v", err)
	}
}

// TestMissingCosignaturesRejected: a 2-of-3 witness policy.
func TestMissingCosignaturesRejected(t *testing.T) {
	l := newTestLog(t, 3, 2)
	all := l.witnesses
	l.update("alice", []byte("v0"))
	for _, n := range []int{0, 1} {
		l.witnesses = all[:n]
		l.publish()
		_, err := l.cfg.VerifyHead(nil, l.head(0), l.now)
		wantKind(t, err, MissingCosignatures)
	}
	l.witnesses = all[1:]
	l.publish()
	if _, err := l.cfg.VerifyHead(nil, l.head(0), l.now); err != nil {
		t.Fatalf("2 of 3: %v", err)
	}
	// One witness's line twice counts once.
	l.witnesses = all[:1]
	l.publish()
	signed := l.signed
	line := signed[bytes.LastIndex(signed, []byte("— witness")):]
	dup := append(bytes.Clone(signed), line...)
	h := l.head(0)
	h.Checkpoint = dup
	_, err := l.cfg.VerifyHead(nil, h, l.now)
	wantKind(t, err, MissingCosignatures)
	// A cosignature by a witness outside the policy does not count.
	outsider, _ := kt.NewCosigner("outsider.example", primitives.GenerateEd25519(), func() time.Time { return l.now })
	h.Checkpoint, _ = outsider.Cosign(signed)
	_, err = l.cfg.VerifyHead(nil, h, l.now)
	wantKind(t, err, MissingCosignatures)
	// A corrupted cosignature by a known witness rejects the checkpoint.
	l.witnesses = all
	l.publish()
	// Flip one bit of witness2's Ed25519 signature, keeping the line
	// well formed.
	i := bytes.LastIndex(l.signed, []byte("— witness2.example "))
	j := i + bytes.IndexByte(l.signed[i:], '\n')
	fields := bytes.Fields(l.signed[i:j])
	raw, err := base64.StdEncoding.DecodeString(string(fields[2]))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-10] ^= 1
	bad := append(append(bytes.Clone(l.signed[:i]), "— witness2.example "+base64.StdEncoding.EncodeToString(raw)...), l.signed[j:]...)
	h = l.head(0)
	h.Checkpoint = bad
	_, err = l.cfg.VerifyHead(nil, h, l.now)
	wantKind(t, err, BadSignature)
}

// TestCheckpointNeedsBothLogSignatures: the Ed25519 line alone (what a
// generic tlog tool needs) is not enough for a Parley client, nor the
// hybrid line alone.
func TestCheckpointNeedsBothLogSignatures(t *testing.T) {
	l := newTestLog(t, 0, 0)
	l.update("alice", []byte("v0"))
	l.publish()
	text, sigs, _ := bytes.Cut(l.signed, []byte("\n\n"))
	lines := bytes.SplitAfter(sigs, []byte("\n"))
	for i, keep := range [][]byte{lines[0], lines[1]} {
		h := l.head(0)
		h.Checkpoint = append(append(bytes.Clone(text), "\n\n"...), keep...)
		_, err := l.cfg.VerifyHead(nil, h, l.now)
		if e := wantKind(t, err, BadSignature); i == 0 && !bytes.Contains([]byte(e.Error()), []byte("hybrid")) {
			t.Fatalf("Ed25519 only: %v", e)
		}
	}
	// Another origin's log, signed with other keys: unverified.
	other := newTestLog(t, 0, 0)
	other.update("alice", []byte("v0"))
	other.publish()
	_, err := l.cfg.VerifyHead(nil, other.head(0), other.now)
	wantKind(t, err, BadSignature)
}

// TestAudit: a full audit passes on an honest log and resumes; an epoch
// whose published root drops an entry, or that re-inserts an index, is
// NotAppendOnly; a checkpoint of another history is Fork.
func TestAudit(t *testing.T) {
	l := newTestLog(t, 1, 1)
	for e := 0; e < 6; e++ {
		for i := 0; i < 5; i++ {
			l.update(fmt.Sprintf("u%d-%d", e, i), []byte("x"))
		}
		l.publish()
	}
	entries := make([]kt.LogEntry, len(l.epochs))
	for i := range entries {
		entries[i], _ = l.state.Log().Entry(uint64(i))
	}
	a, err := l.cfg.Audit(l.epochs, entries, l.signed)
	if err != nil {
		t.Fatal(err)
	}
	// Resume from the audited state with two more epochs.
	l.update("late", []byte("y"))
	l.publish()
	l.publish() // an empty epoch refreshes the timestamp
	e6, _ := l.state.Log().Entry(6)
	e7, _ := l.state.Log().Entry(7)
	if err := l.cfg.AuditFrom(a, l.epochs[6:], []kt.LogEntry{e6, e7}, l.signed); err != nil {
		t.Fatalf("resume: %v", err)
	}
	rebuilt, err := kt.RebuildState(l.epochs, append(entries, e6, e7))
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := l.cfg.VerifyCheckpoint(l.signed)
	if err != nil {
		t.Fatal(err)
	}
	if err := ResumeAuditor(rebuilt).CheckCheckpoint(cp); err != nil {
		t.Fatalf("auditor resumed from a rebuilt state: %v", err)
	}

	// An epoch that quietly drops an earlier entry: the server's tree
	// lacks u0-0 from epoch 3 on, so its published roots differ.
	bad := newTestLog(t, 0, 0)
	*bad = *l
	bad.state = kt.NewState()
	var pub []kt.LogEntry
	for i := 0; i < 6; i++ {
		e := l.epochs[i]
		if i == 3 {
			// Rebuild the tree without epoch 0's first leaf.
			var leaves []kt.Leaf
			for j := 0; j <= 3; j++ {
				leaves = append(leaves, l.epochs[j].Leaves...)
			}
			tree, _ := kt.BuildTree(leaves[1:])
			pub = append(pub, kt.LogEntry{Epoch: 3, Timestamp: e.Timestamp, PrefixRoot: tree.Root()})
			continue
		}
		entry, _ := l.state.Log().Entry(uint64(i))
		pub = append(pub, entry)
	}
	_, err = l.cfg.Audit(l.epochs[:6], pub, l.signed)
	wantKind(t, err, NotAppendOnly)

	// An epoch that inserts an index already in the tree.
	epochs := append([]kt.Epoch(nil), l.epochs[:6]...)
	epochs[4].Leaves = append(append([]kt.Leaf(nil), epochs[4].Leaves...), l.epochs[1].Leaves[0])
	_, err = l.cfg.Audit(epochs, nil, l.signed)
	wantKind(t, err, NotAppendOnly)

	// The checkpoint of a forked history.
	f := forkLog(t, l, 5)
	f.update("z", []byte("z"))
	f.publish()
	_, err = l.cfg.Audit(l.epochs[:6], nil, f.signed)
	wantKind(t, err, Fork)
}
