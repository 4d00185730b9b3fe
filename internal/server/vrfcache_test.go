package server

import (
	"bytes"
	"testing"
)

// TestLookupsFromVRFCacheVerify: lookups answered from the VRF proof cache
// verify as a client checks them and are byte for byte the answers
// computed without it; KTVRFCacheEntries 0 runs without a cache.
func TestLookupsFromVRFCacheVerify(t *testing.T) {
	h := newHarness(t, testConfig())
	vc := ktConfig(t, h.kt)
	h.register("alice", 2)
	first := waitSequenced(t, h.dir, vc, nil, "alice", 0)
	_, before := h.srv.kt.vrfCache.Stats()
	again, err := verifiedLookup(t, h.dir, vc, first.trusted, "alice")
	if err != nil {
		t.Fatalf("a lookup from the cache: %v", err)
	}
	hits, computed := h.srv.kt.vrfCache.Stats()
	if hits == 0 || computed != before {
		t.Fatalf("the second lookup: %d hits, %d proofs computed (%d before); want hits only", hits, computed, before)
	}
	if again.trusted.Checkpoint == first.trusted.Checkpoint && !bytes.Equal(again.resp.KtSearch, first.resp.KtSearch) {
		t.Fatal("the same lookup in the same epoch gave another proof from the cache")
	}

	cfg := testConfig()
	cfg.KTVRFCacheEntries = 0
	off := newHarness(t, cfg)
	if off.srv.kt.vrfCache != nil {
		t.Fatal("KTVRFCacheEntries 0 made a cache")
	}
	off.register("bob", 2)
	waitSequenced(t, off.dir, ktConfig(t, off.kt), nil, "bob", 0)
}
