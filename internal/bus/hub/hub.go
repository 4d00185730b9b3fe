// Package hub implements the in-process half of a bus.Bus, shared by the
// engines internal/bus/mem and internal/bus/nats (docs/server.md §5.5): the
// live subscriptions of each device, woken without waiting for them.
//
// A hub starts no goroutines: Wake puts the wake-up in each subscriber's
// one-slot channel, merged with the one pending there, so a slow subscriber
// never holds up the notifier, and nothing is left running for Close to
// stop.
package hub

import (
	"slices"
	"sync"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/store"
)

// Hub is the set of live subscriptions of each device. The zero value is
// an empty, open hub.
//
// Locking: mu, then a subscription's own mu (held only by wakers, for a
// channel receive and send that cannot block); nothing is called out to
// while either is held, so there is no lock order to keep with the engine
// around it.
type Hub struct {
	// mu is a read-write lock because Wake, the hot path (once per
	// recipient device of every send), only reads the map, so senders do
	// not queue behind one another; mem's BenchmarkNotifyParallel measured
	// it faster than a plain mutex. Waking a subscription is safe under
	// the read lock (it has a lock of its own); only the map needs the
	// write lock.
	mu     sync.RWMutex
	closed bool
	subs   map[store.DeviceID][]*subscription
}

// subscription is one Subscribe call. wake has room for one value: a
// wake-up that finds one pending merges into it (the larger seq; Unknown
// wins), so the subscriber reads one value however many arrived. Only
// wakers send on wake, under mu, so one that has emptied the buffer can
// always refill it without blocking.
type subscription struct {
	mu   sync.Mutex
	wake chan uint64
}

// never is what Subscribe returns after Close: a channel nothing ever
// sends on. It is shared, since no caller can send on or close a receive-
// only channel.
var never = make(chan uint64)

// Subscribe registers a subscriber of id: every Wake(id) made after it
// returns reaches the channel, coalesced. After Close it returns a channel
// that never receives and a no-op cancel. cancel is idempotent.
func (h *Hub) Subscribe(id store.DeviceID) (<-chan uint64, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return never, func() {}
	}
	if h.subs == nil {
		h.subs = make(map[store.DeviceID][]*subscription)
	}
	s := &subscription{wake: make(chan uint64, 1)}
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

// Wake wakes every subscriber of id with seq (bus.Unknown if seq is 0)
// and reports whether the hub is open. It never blocks and does not
// allocate.
func (h *Hub) Wake(id store.DeviceID, seq uint64) bool {
	if seq == 0 {
		seq = bus.Unknown
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return false
	}
	for _, s := range h.subs[id] {
		wake(s, seq)
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
			wake(s, bus.Unknown)
		}
	}
}

// wake puts seq in s.wake, merged with the wake-up already pending if
// there is one.
func wake(s *subscription, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case pending := <-s.wake:
		seq = max(seq, pending)
	default:
	}
	s.wake <- seq // room: only wakers send, and they hold mu
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
