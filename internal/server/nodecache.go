package server

import (
	"context"
	"sync"
	"time"

	"github.com/parleyim/parley/internal/store"
)

// Every relay call used to read the store twice before doing its work:
// authentication reads the caller's device, so that a removed device's
// token stops working (docs/server.md §4), and a send reads the device
// sets it must match (§5.1). At thousands of calls a second those reads
// were the relay's largest store cost (docs/performance.md "Relay"), so
// each node remembers what it read for Config.NodeCacheTTL (default
// DefaultNodeCacheTTL). The node that changes a device list (publishList,
// DeleteAccount) forgets the account at once; other nodes sharing the
// store see the change at most NodeCacheTTL later.
// A send whose envelopes do not match a remembered set is checked again
// against the store before it is refused (relay.go).
const (
	// DefaultNodeCacheTTL is how long a node trusts its last reading.
	DefaultNodeCacheTTL = time.Second
	// nodeCacheMax bounds the entries of each cache; a full cache drops
	// its expired entries, and if none have expired, starts over.
	nodeCacheMax = 1 << 16
)

// ttlCache maps keys to what a recent store read found, for ttl. With a
// ttl of zero it remembers nothing.
type ttlCache[K comparable, V any] struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[K]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v     V
	until time.Time // monotonic
}

func newTTLCache[K comparable, V any](ttl time.Duration) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, m: make(map[K]ttlEntry[V])}
}

func (c *ttlCache[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[K, V]) put(k K, v V, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= nodeCacheMax {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= nodeCacheMax {
			clear(c.m)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, until: now.Add(c.ttl)}
}

func (c *ttlCache[K, V]) forget(ks ...K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range ks {
		delete(c.m, k)
	}
}

// nodeCaches are the two caches: the account each recently authenticated
// device belongs to (no keys: calls that need the device's public key
// read it), and each account's current device ids.
type nodeCaches struct {
	accountOf *ttlCache[store.DeviceID, string]
	devices   *ttlCache[string, []store.DeviceID]
}

func newNodeCaches(ttl time.Duration) nodeCaches {
	return nodeCaches{
		accountOf: newTTLCache[store.DeviceID, string](ttl),
		devices:   newTTLCache[string, []store.DeviceID](ttl),
	}
}

// forgetAccount drops what this node remembers of an account whose device
// list changed: its device set and the given (removed) devices.
func (c nodeCaches) forgetAccount(username string, removed ...store.DeviceID) {
	c.devices.forget(username)
	c.accountOf.forget(removed...)
}

// deviceSets returns the current device ids of each account, from this
// node's cache unless fresh is set or an account is not in it; cached says
// whether they came from the cache. The slices are shared: read only.
func (s *Server) deviceSets(ctx context.Context, fresh bool, usernames ...string) (sets [][]store.DeviceID, cached bool, err error) {
	now := time.Now()
	if !fresh {
		sets = make([][]store.DeviceID, len(usernames))
		hit := true
		for i, name := range usernames {
			if sets[i], hit = s.cache.devices.get(name, now); !hit {
				break
			}
		}
		if hit {
			return sets, true, nil
		}
	}
	sets, err = s.store.DeviceIDs(ctx, usernames...)
	if err != nil {
		return nil, false, err
	}
	for i, name := range usernames {
		// An unknown account is not remembered: it may register on
		// another node at any moment.
		if len(sets[i]) > 0 {
			s.cache.devices.put(name, sets[i], now)
		}
	}
	return sets, false, nil
}
