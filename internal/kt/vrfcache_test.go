package kt

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/parleyim/parley/internal/primitives/vrf"
)

// TestVRFCacheServesWhatProveComputes: on a miss and on every later hit,
// the cache answers exactly the index and proof Index computes, for every
// pair; hits and computations are counted.
func TestVRFCacheServesWhatProveComputes(t *testing.T) {
	k := vrf.GenerateKey()
	c := NewVRFCache(k, 1024)
	for round := range 3 {
		for i := range 20 {
			label, version := fmt.Sprintf("user-%d", i%7), uint32(i)
			wantIdx, wantPi := Index(k, label, version)
			idx, pi := c.Index(k, label, version)
			if idx != wantIdx || pi != wantPi {
				t.Fatalf("round %d: (%s, %d) from the cache differs from Index", round, label, version)
			}
		}
	}
	if hits, computed := c.Stats(); computed != 20 || hits != 40 {
		t.Fatalf("hits %d, computed %d; want 40 and 20", hits, computed)
	}
}

// TestVRFCacheServesOnlyItsKey: a cache asked with another key (a key
// rotation, a cache shared by mistake) never answers with a proof of the
// key it was made for, and keeps nothing of the other key.
func TestVRFCacheServesOnlyItsKey(t *testing.T) {
	k1, k2 := vrf.GenerateKey(), vrf.GenerateKey()
	c := NewVRFCache(k1, 1024)
	c.Index(k1, "alice", 0)
	idx, pi := c.Index(k2, "alice", 0)
	if wantIdx, wantPi := Index(k2, "alice", 0); idx != wantIdx || pi != wantPi {
		t.Fatal("a cache for one key answered another key's lookup with its own proof")
	}
	if n := c.Len(); n != 1 {
		t.Fatalf("the cache holds %d entries after one lookup with its key and one with another", n)
	}
	var off *VRFCache // a Prover without a cache
	if idx, pi := off.Index(k2, "bob", 3); idx != Index2(k2, "bob", 3) || pi == ([VRFProofSize]byte{}) {
		t.Fatal("a nil cache does not compute")
	}
}

// Index2 is Index's index alone.
func Index2(k *vrf.PrivateKey, label string, version uint32) [IndexSize]byte {
	idx, _ := Index(k, label, version)
	return idx
}

// TestVRFCacheStaysBounded: however many pairs are looked up, the cache
// holds at most its bound, and an entry in constant use stays while the
// others turn over.
func TestVRFCacheStaysBounded(t *testing.T) {
	k := vrf.GenerateKey()
	c := NewVRFCache(k, 64) // 2 generations × 32 shards × 1
	if c.Cap() != 64 {
		t.Fatalf("Cap = %d, want 64", c.Cap())
	}
	c.Index(k, "hot", 0)
	for i := range 600 {
		c.Index(k, fmt.Sprintf("cold-%d", i), 0)
		c.Index(k, "hot", 0)
		if n := c.Len(); n > c.Cap() {
			t.Fatalf("after %d lookups the cache holds %d entries, over its bound %d", i, n, c.Cap())
		}
	}
	hits, computed := c.Stats()
	if computed != 601 || hits != 600 {
		t.Fatalf("hits %d, computed %d: the entry in constant use was evicted (want 600 hits, 601 computed)", hits, computed)
	}
	if d := NewVRFCache(k, 0); d.Cap() != DefaultVRFCacheEntries {
		t.Fatalf("NewVRFCache(k, 0).Cap() = %d, want DefaultVRFCacheEntries", d.Cap())
	}
}

// TestVRFCacheConcurrent: concurrent lookups (the server's searches) get
// the right answers; run with -race.
func TestVRFCacheConcurrent(t *testing.T) {
	k := vrf.GenerateKey()
	c := NewVRFCache(k, 128)
	want := make([][VRFProofSize]byte, 40)
	for i := range want {
		_, want[i] = Index(k, fmt.Sprintf("u%d", i), 1)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for j := range 200 {
				i := (j*7 + g) % len(want)
				if _, pi := c.Index(k, fmt.Sprintf("u%d", i), 1); pi != want[i] {
					t.Errorf("u%d: wrong proof", i)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestProverWithCacheSameProofs: searches, fixed searches, absent-label
// proofs and monitor proofs built with a cache (cold, then warm) are byte
// for byte those built without one.
func TestProverWithCacheSameProofs(t *testing.T) {
	k := vrf.GenerateKey()
	st := NewState()
	values := map[string][][]byte{}
	openings := map[string][][OpeningSize]byte{}
	var leaves []Leaf
	for _, label := range []string{"alice", "bob"} {
		for v := range uint32(5) {
			val := fmt.Appendf(nil, "%s-%d", label, v)
			l, o, err := NewUpdate(k, label, v, val)
			if err != nil {
				t.Fatal(err)
			}
			leaves = append(leaves, l)
			values[label] = append(values[label], val)
			openings[label] = append(openings[label], o)
		}
	}
	if _, err := st.Apply(&Epoch{Number: 0, Timestamp: 1, Leaves: leaves}); err != nil {
		t.Fatal(err)
	}
	tree, _ := st.Snapshot()
	plain := Prover{VRF: k, Tree: tree}
	cached := Prover{VRF: k, Tree: tree, Cache: NewVRFCache(k, 256)}
	build := func(p Prover) [][]byte {
		var out [][]byte
		add := func(b []byte, err error) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		sp, err := p.Search("alice", 4, openings["alice"][4], values["alice"][4])
		if err != nil {
			t.Fatal(err)
		}
		add(sp.Marshal())
		sp, err = p.Fixed("bob", 4, 1, openings["bob"][1], values["bob"][1])
		if err != nil {
			t.Fatal(err)
		}
		add(sp.Marshal())
		sp, err = p.Absent("carol")
		if err != nil {
			t.Fatal(err)
		}
		add(sp.Marshal())
		var opened []Opened
		for v := 2; v <= 4; v++ {
			opened = append(opened, Opened{Opening: openings["bob"][v], Value: values["bob"][v]})
		}
		mp, err := p.Monitor("bob", 4, 2, opened)
		if err != nil {
			t.Fatal(err)
		}
		add(mp.Marshal())
		return out
	}
	want := build(plain)
	for round := range 2 {
		got := build(cached)
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("round %d: proof %d with the cache differs", round, i)
			}
		}
	}
	if hits, _ := cached.Cache.Stats(); hits == 0 {
		t.Fatal("the second round hit nothing")
	}
}
