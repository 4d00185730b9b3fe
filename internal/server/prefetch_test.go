package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/kt"
)

// prefetched reports how many leaves the sequencer holds computed ahead,
// and whether it holds one for seq.
func (l *ktLog) prefetched(seq uint64) (int, bool) {
	l.prep.Lock()
	defer l.prep.Unlock()
	_, ok := l.prep.ready[seq]
	return len(l.prep.ready), ok
}

// TestPrefetchedLeafOfAnotherValueIsNotSequenced: the sequencer uses a
// leaf computed ahead only for the very update it was computed from. A
// leaf held for the right queue position but computed over another value
// (what a stale or mixed-up prefetch would hold) is recomputed, so the
// epoch commits to the value it stores and a client's lookup verifies
// (it would report KeySubstituted otherwise).
func TestPrefetchedLeafOfAnotherValueIsNotSequenced(t *testing.T) {
	cfg := testConfig()
	cfg.KTEpochInterval = time.Hour // one step at start; then by hand
	h := newHarness(t, cfg)
	vc := ktConfig(t, h.kt)
	l := h.srv.kt
	eventually(t, "the sequencer role", l.sequencing.Load)
	h.register("alice", 2)
	pending, err := h.st.PendingKT(context.Background(), 0, 10)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending: %+v, %v", pending, err)
	}
	p := pending[0]
	eventually(t, "alice's leaf computed ahead", func() bool { _, ok := l.prefetched(p.Seq); return ok })

	// Swap in a leaf for the same (Seq, username, version) over another
	// value.
	other := append([]byte("not "), p.Value...)
	leaf, opening, err := kt.NewUpdate(l.vrf, p.Username, p.Version, other)
	if err != nil {
		t.Fatal(err)
	}
	l.prep.Lock()
	u := l.prep.ready[p.Seq]
	u.leaf, u.opening = leaf, opening
	l.prep.ready[p.Seq] = u
	l.prep.Unlock()

	if err := l.step(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The step published the epoch (no witnesses to wait for).
	got, err := verifiedLookup(t, h.dir, vc, nil, "alice")
	if err != nil {
		t.Fatalf("lookup after the epoch: %v", err)
	}
	if got.found.Version != 0 || string(got.found.Value) != string(p.Value) {
		t.Fatal("the sequenced value is not alice's list")
	}
	if n, _ := l.prefetched(p.Seq); n != 0 {
		t.Fatalf("%d leaves still held after their epoch", n)
	}
}

// TestPrefetchComputesAheadAndForgets: updates queued between epochs get
// their leaves computed before the epoch, the epoch sequences all of them
// (each lookup verifies), and the sequencer holds no leaf once they are
// sequenced; losing the sequencer role drops what it held.
func TestPrefetchComputesAheadAndForgets(t *testing.T) {
	cfg := testConfig()
	cfg.KTEpochInterval = time.Hour
	h := newHarness(t, cfg)
	vc := ktConfig(t, h.kt)
	l := h.srv.kt
	eventually(t, "the sequencer role", l.sequencing.Load)
	const n = 5
	for i := range n {
		h.register(fmt.Sprintf("user%d", i), 2)
	}
	eventually(t, "every leaf computed ahead", func() bool { k, _ := l.prefetched(0); return k == n })
	if err := l.step(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		waitSequenced(t, h.dir, vc, nil, fmt.Sprintf("user%d", i), 0)
	}
	if k, _ := l.prefetched(0); k != 0 {
		t.Fatalf("%d leaves held after their epoch", k)
	}

	h.register("late", 2)
	eventually(t, "the late leaf computed ahead", func() bool { k, _ := l.prefetched(0); return k == 1 })
	l.release()
	if k, _ := l.prefetched(0); k != 0 || l.sequencing.Load() {
		t.Fatalf("after giving up the role: %d leaves held, sequencing %v", k, l.sequencing.Load())
	}
}
