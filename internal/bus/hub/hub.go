// Package hub implements the in-process half of a bus.Bus, shared by the
// engines internal/bus/mem and internal/bus/nats (docs/server.md §5.5): the
// live subscriptions of each device, woken by non-blocking sends.
//
// A hub starts no goroutines: Wake delivers by a non-blocking send on each
// subscriber's buffered channel, so a slow subscriber never holds up the
// notifier, and nothing is left running for Close to stop.
package hub

import (
	"slices"
	"sync"

	"github.com/parleyim/parley/internal/store"
)

// Hub is the set of live subscriptions of each device. The zero value is
// an empty, open hub.
//
// Locking: mu is the only lock, and nothing is called out to while it is
// held (every channel send under it is non-blocking), so there is no lock
// order to keep with the engine around it.
type Hub struct {
	// mu is a read-write lock because Wake, the hot path (once per
	// recipient device of every send), only reads the map, so senders do
	// not queue behind one another; mem's BenchmarkNotifyParallel measured
	// it faster than a plain mutex. A non-blocking channel send is safe
	// under the read lock; only the map needs the write lock.
	mu     sync.RWMutex
	closed bool
	subs   map[store.DeviceID][]*subscription
}

// subscription is one Subscribe call. wake has room for one value: a
// pending value already means "look at the queue", so further wake-ups
// before the subscriber reads add nothing and are dropped.
type subscription struct {
	wake chan struct{}
}

// never is what Subscribe returns after Close: a channel nothing ever
// sends on. It is shared, since no caller can send on or close a receive-
// only channel.
var never = make(chan struct{})

// Subscribe registers a subscriber of id: every Wake(id) made after it
// returns reaches the channel, coalesced. After Close it returns a channel
// that never receives and a no-op cancel. cancel is idempotent.
func (h *Hub) Subscribe(id store.DeviceID) (<-chan struct{}, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return never, func() {}
	}
	if h.subs == nil {
		h.subs = make(map[store.DeviceID][]*subscription)
	}
	s := &subscription{wake: make(chan struct{}, 1)}
	h.subs[id] = append(h.subs[id], s)
	return s.wake, func() { h.unsubscribe(id, s) }
}

// unsubscribe removes s from id's subscribers. It is idempotent: a second
// call, or a call after Close emptied the map, finds nothing to remove.
func (h *Hub) unsubscribe(id store.DeviceID, s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.subs[id]
	i := slices.Index(subs, s)
	if i < 0 {
		return
	}
	// Order among subscribers does not matter, so swap-remove; clear the
	// vacated slot so the slice does not keep the subscription alive.
	last := len(subs) - 1
	subs[i] = subs[last]
	subs[last] = nil
	if last == 0 {
		delete(h.subs, id) // the map holds only devices with subscribers
	} else {
		h.subs[id] = subs[:last]
	}
}

// Wake wakes every subscriber of id and reports whether the hub is open.
// It never blocks and does not allocate.
func (h *Hub) Wake(id store.DeviceID) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return false
	}
	for _, s := range h.subs[id] {
		wake(s)
	}
	return true
}

// WakeAll wakes every subscriber of every device. An engine calls it when
// it may have missed notifications (a networked engine after a reconnect):
// a spurious wake-up costs one queue read, a missed one a stalled stream.
func (h *Hub) WakeAll() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, subs := range h.subs {
		for _, s := range subs {
			wake(s)
		}
	}
}

// wake sends on s.wake unless a wake-up is already pending.
func wake(s *subscription) {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending: coalesce
	}
}

// Close marks the hub closed: Wake reports false and Subscribe hands out
// channels that never receive. It sends on and closes no channel handed
// out. Close is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	// Drop the map so outstanding cancel funcs become no-ops (reading a
	// nil map finds nothing) and the channels can be collected once their
	// holders let go.
	h.subs = nil
}
