package server

import (
	"sync"
	"time"

	"github.com/parleyim/parley/internal/store"
)

// Authentication reads the caller's device on every call, so that a removed
// device's token stops working (docs/server.md §4). At thousands of calls a
// second that read was the relay's largest store cost (docs/performance.md
// "Relay"), so each node remembers, for authCacheTTL, which devices it has
// found current. The node that removes a device (publishList,
// DeleteAccount) forgets it at once; other nodes sharing the store stop
// accepting its token at most authCacheTTL later.
const (
	// authCacheTTL is how long a node trusts its last reading of a device.
	authCacheTTL = time.Second
	// authCacheMax bounds the entries; a full cache drops its expired
	// entries, and if none have expired, starts over.
	authCacheMax = 1 << 16
)

// authCache maps device ids to the account a recent read found them in.
// It keeps no keys: calls that need the device's public key read it.
type authCache struct {
	mu sync.Mutex
	m  map[store.DeviceID]authEntry
}

type authEntry struct {
	username string
	until    time.Time // monotonic
}

func newAuthCache() *authCache {
	return &authCache{m: make(map[store.DeviceID]authEntry)}
}

func (c *authCache) get(id store.DeviceID, now time.Time) (string, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return "", false
	}
	return e.username, true
}

func (c *authCache) put(id store.DeviceID, username string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= authCacheMax {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= authCacheMax {
			clear(c.m)
		}
	}
	c.m[id] = authEntry{username: username, until: now.Add(authCacheTTL)}
}

func (c *authCache) forget(ids ...store.DeviceID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(c.m, id)
	}
}
