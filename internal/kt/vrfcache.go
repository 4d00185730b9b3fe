package kt

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/parleyim/parley/internal/primitives/vrf"
)

// DefaultVRFCacheEntries is the default bound of a VRFCache: about 300
// bytes per entry with a short label (measured), so some 20 MB for the
// 2–6 lookups of 10,000–30,000 recently searched labels.
const DefaultVRFCacheEntries = 1 << 16

// vrfCacheShards is the number of independently locked parts of a
// VRFCache (a power of two).
const vrfCacheShards = 32

// VRFCache remembers the index and VRF proof of (label, version) pairs for
// one VRF key, so that a server answering many searches for the same
// labels computes each ECVRF proof once (docs/transparency.md, "Server").
// Caching changes no answer: an ECVRF proof is a deterministic function of
// the key and the input (RFC 9381 §5.4.2.2 nonces), so a cached proof is
// byte for byte the one Prove would compute again.
//
// It holds at most the number of entries it was made with, evicting about
// the least recently used: each shard keeps a current and a previous
// generation; a hit in the previous one moves the entry to the current
// one, and when the current one is full it becomes the previous one and
// the old previous one is dropped. It is safe for concurrent use.
type VRFCache struct {
	key      *vrf.PrivateKey
	seed     maphash.Seed
	perGen   int // entries per generation per shard
	shards   [vrfCacheShards]vrfShard
	hits     atomic.Uint64
	computed atomic.Uint64
}

type vrfShard struct {
	mu       sync.Mutex
	cur, old map[vrfKey]vrfEntry
}

type vrfKey struct {
	label   string
	version uint32
}

type vrfEntry struct {
	index [IndexSize]byte
	proof [VRFProofSize]byte
}

// NewVRFCache returns a cache for key holding at most entries pairs
// (entries ≤ 0: DefaultVRFCacheEntries). The bound is rounded down to a
// multiple of 2 × 32 (the generations of its shards), and is at least that.
func NewVRFCache(key *vrf.PrivateKey, entries int) *VRFCache {
	if entries <= 0 {
		entries = DefaultVRFCacheEntries
	}
	c := &VRFCache{key: key, seed: maphash.MakeSeed(), perGen: max(entries/(2*vrfCacheShards), 1)}
	for i := range c.shards {
		c.shards[i].cur = make(map[vrfKey]vrfEntry)
	}
	return c
}

// Cap returns the most entries the cache holds.
func (c *VRFCache) Cap() int { return 2 * vrfCacheShards * c.perGen }

// Len returns how many entries the cache holds.
func (c *VRFCache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.old)
		s.mu.Unlock()
	}
	return n
}

// Stats returns how many lookups the cache answered and how many it
// computed.
func (c *VRFCache) Stats() (hits, computed uint64) { return c.hits.Load(), c.computed.Load() }

// Index returns Index(k, label, version), from the cache when it holds
// it. A cache serves only the key it was made for: with another key it
// computes the proof and keeps nothing.
func (c *VRFCache) Index(k *vrf.PrivateKey, label string, version uint32) ([IndexSize]byte, [VRFProofSize]byte) {
	if c == nil || k != c.key {
		return Index(k, label, version)
	}
	key := vrfKey{label, version}
	s := &c.shards[maphash.Comparable(c.seed, key)%vrfCacheShards]
	s.mu.Lock()
	if e, ok := s.cur[key]; ok {
		s.mu.Unlock()
		c.hits.Add(1)
		return e.index, e.proof
	}
	if e, ok := s.old[key]; ok {
		delete(s.old, key)
		s.put(key, e, c.perGen)
		s.mu.Unlock()
		c.hits.Add(1)
		return e.index, e.proof
	}
	s.mu.Unlock()
	// Computed outside the lock: two concurrent misses of one pair both
	// compute it, and store the same entry.
	idx, pi := Index(k, label, version)
	c.computed.Add(1)
	s.mu.Lock()
	s.put(key, vrfEntry{idx, pi}, c.perGen)
	s.mu.Unlock()
	return idx, pi
}

// put stores e in the current generation, turning over the generations
// when it is full. Caller holds s.mu.
func (s *vrfShard) put(key vrfKey, e vrfEntry, perGen int) {
	if _, ok := s.cur[key]; !ok && len(s.cur) >= perGen {
		s.old, s.cur = s.cur, make(map[vrfKey]vrfEntry, perGen)
	}
	s.cur[key] = e
}
