package storetest

import (
	"sync"
	"testing"

	"github.com/parleyim/parley/internal/store"
)

func testPrekeysReplace(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	id := f.ids[0]
	signed := store.Prekey{ID: 10, Body: body(id, "signed", 10)}
	last := store.Prekey{ID: 11, Body: body(id, "last-resort", 11)}
	if err := h.s.AddPrekeys(h.ctx, id, store.PrekeyUpload{Signed: &signed}); err != nil {
		t.Fatalf("AddPrekeys(signed): %v", err)
	}
	b := h.claim(id)
	if !equalPrekey(b.Signed, signed) {
		t.Errorf("signed prekey after replacement = %d, want %d", b.Signed.ID, signed.ID)
	}
	if err := h.s.AddPrekeys(h.ctx, id, store.PrekeyUpload{LastResort: &last}); err != nil {
		t.Fatalf("AddPrekeys(last resort): %v", err)
	}
	// Drain the one-time ML-KEM prekeys to see the last-resort one.
	for range 3 {
		h.claim(id)
	}
	b = h.claim(id)
	if !b.PQLastResort || !equalPrekey(b.PQ, last) || !equalPrekey(b.Signed, signed) {
		t.Errorf("bundle = signed %d, pq %d (last resort %v); want signed %d, last resort %d",
			b.Signed.ID, b.PQ.ID, b.PQLastResort, signed.ID, last.ID)
	}
	// An upload without Signed or LastResort leaves them alone.
	if err := h.s.AddPrekeys(h.ctx, id, store.PrekeyUpload{OneTime: []store.Prekey{{ID: 100, Body: []byte("x")}}}); err != nil {
		t.Fatalf("AddPrekeys(one-time only): %v", err)
	}
	b = h.claim(id)
	if !equalPrekey(b.Signed, signed) || !equalPrekey(b.PQ, last) {
		t.Errorf("a one-time upload changed the signed or last-resort prekey")
	}
}

func testPrekeysOneTimeIdempotent(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	id := f.ids[0]
	// Re-uploading ids 1..5 and 1..3 changes nothing; 6 and 4 are new.
	retry := prekeys(id, 6, 4)
	for i := range retry.OneTime {
		retry.OneTime[i].Body = []byte("replaced")
	}
	for i := range retry.PQ {
		retry.PQ[i].Body = []byte("replaced")
	}
	retry.OneTime[5].Body = body(id, "one-time", 6)
	retry.PQ[3].Body = body(id, "pq", 4)
	retry.Signed, retry.LastResort = nil, nil
	for range 2 {
		if err := h.s.AddPrekeys(h.ctx, id, retry); err != nil {
			t.Fatalf("AddPrekeys: %v", err)
		}
		if ot, pq := h.counts(id); ot != 6 || pq != 4 {
			t.Fatalf("PrekeyCounts after re-upload = %d, %d, want 6, 4", ot, pq)
		}
	}
	// The held ids kept their first bodies.
	for i := 1; i <= 6; i++ {
		b := h.claim(id)
		if b.OneTime == nil || !equalPrekey(*b.OneTime, store.Prekey{ID: uint32(i), Body: body(id, "one-time", uint32(i))}) {
			t.Fatalf("claim %d: one-time prekey %+v, want id %d with its first body", i, b.OneTime, i)
		}
	}
}

func testClaimBundleOrderAndCounts(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	id := f.ids[0]
	up := prekeys(id, 5, 3)
	for i := 1; i <= 7; i++ {
		b := h.claim(id)
		if !equalPrekey(b.Signed, *up.Signed) {
			t.Errorf("claim %d: signed = %d, want %d", i, b.Signed.ID, up.Signed.ID)
		}
		wantOT, wantPQ := max(5-i, 0), max(3-i, 0)
		if b.OneTimeLeft != wantOT || b.PQLeft != wantPQ {
			t.Errorf("claim %d: left = %d, %d, want %d, %d", i, b.OneTimeLeft, b.PQLeft, wantOT, wantPQ)
		}
		if ot, pq := h.counts(id); ot != wantOT || pq != wantPQ {
			t.Errorf("claim %d: PrekeyCounts = %d, %d, want %d, %d", i, ot, pq, wantOT, wantPQ)
		}
		if i <= 5 {
			if b.OneTime == nil || !equalPrekey(*b.OneTime, up.OneTime[i-1]) {
				t.Errorf("claim %d: one-time = %+v, want id %d", i, b.OneTime, i)
			}
		} else if b.OneTime != nil {
			t.Errorf("claim %d: one-time = %d, want none (ran out)", i, b.OneTime.ID)
		}
		if i <= 3 {
			if b.PQLastResort || !equalPrekey(b.PQ, up.PQ[i-1]) {
				t.Errorf("claim %d: pq = %d (last resort %v), want one-time %d", i, b.PQ.ID, b.PQLastResort, i)
			}
		} else if !b.PQLastResort || !equalPrekey(b.PQ, *up.LastResort) {
			t.Errorf("claim %d: pq = %d (last resort %v), want the last-resort %d", i, b.PQ.ID, b.PQLastResort, up.LastResort.ID)
		}
	}
}

// testClaimBundleFallbacks checks each fallback alone: no one-time X25519
// key but one-time ML-KEM keys left, and the reverse.
func testClaimBundleFallbacks(t *testing.T, h *harness) {
	f := newAccount(t, "alice", 2)
	noX, noPQ := f.ids[0], f.ids[1]
	f.Prekeys[noX] = prekeys(noX, 0, 2)
	f.Prekeys[noPQ] = prekeys(noPQ, 2, 0)
	if err := h.s.CreateAccount(h.ctx, f.NewAccount); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	b := h.claim(noX)
	if b.OneTime != nil || b.PQLastResort || b.PQ.ID != 1 || b.PQLeft != 1 || b.OneTimeLeft != 0 {
		t.Errorf("bundle without one-time X25519 keys = %+v", b)
	}
	b = h.claim(noPQ)
	if b.OneTime == nil || b.OneTime.ID != 1 || !b.PQLastResort || b.PQ.ID != 2 || b.OneTimeLeft != 1 || b.PQLeft != 0 {
		t.Errorf("bundle without one-time ML-KEM keys = %+v", b)
	}
}

// testClaimBundleMissingKeys: a device without a signed or a last-resort
// prekey has no bundle, and a failed claim takes nothing.
func testClaimBundleMissingKeys(t *testing.T, h *harness) {
	f := newAccount(t, "alice", 2)
	noSigned, noLast := f.ids[0], f.ids[1]
	u := prekeys(noSigned, 2, 2)
	u.Signed = nil
	f.Prekeys[noSigned] = u
	u = prekeys(noLast, 2, 2)
	u.LastResort = nil
	f.Prekeys[noLast] = u
	if err := h.s.CreateAccount(h.ctx, f.NewAccount); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	for _, id := range f.ids {
		_, err := h.s.ClaimBundle(h.ctx, id)
		wantErr(t, "ClaimBundle without signed or last-resort prekey", err, store.ErrNotFound)
		if ot, pq := h.counts(id); ot != 2 || pq != 2 {
			t.Errorf("a refused claim took prekeys: %d, %d left, want 2, 2", ot, pq)
		}
	}
}

// testClaimBundleConcurrent claims from many goroutines at once until the
// one-time prekeys run out. A store that reads the lowest id and deletes
// it in two steps without a lock hands the same key to two callers, and
// fails here.
func testClaimBundleConcurrent(t *testing.T, h *harness) {
	const (
		keys     = 200
		claimers = 32
	)
	f := newAccount(t, "alice", 1)
	id := f.ids[0]
	f.Prekeys[id] = prekeys(id, keys, keys)
	if err := h.s.CreateAccount(h.ctx, f.NewAccount); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	var (
		mu       sync.Mutex
		oneTime  = map[uint32]int{}
		pq       = map[uint32]int{}
		failures []error
		wg       sync.WaitGroup
	)
	for range claimers {
		wg.Go(func() {
			for {
				b, err := h.s.ClaimBundle(h.ctx, id)
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
					mu.Unlock()
					return
				}
				if b.OneTime != nil {
					oneTime[b.OneTime.ID]++
				}
				if !b.PQLastResort {
					pq[b.PQ.ID]++
				}
				done := b.OneTime == nil && b.PQLastResort
				mu.Unlock()
				if done {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range failures {
		t.Errorf("ClaimBundle: %v", err)
	}
	for _, m := range []struct {
		kind string
		got  map[uint32]int
	}{{"one-time X25519", oneTime}, {"one-time ML-KEM", pq}} {
		for pid, n := range m.got {
			if n != 1 {
				t.Errorf("%s prekey %d handed out %d times", m.kind, pid, n)
			}
		}
		if len(m.got) != keys {
			t.Errorf("%d distinct %s prekeys handed out, want %d", len(m.got), m.kind, keys)
		}
	}
	if ot, pqLeft := h.counts(id); ot != 0 || pqLeft != 0 {
		t.Errorf("PrekeyCounts after draining = %d, %d, want 0, 0", ot, pqLeft)
	}
}
