// Package mem implements bus.Bus in process, for a single parleyd node, as
// described in docs/server.md §5.
//
// The bus is a hub of two maps behind one lock: the live subscriptions of
// each device and the current stream claim of each device. It starts no
// goroutines: Notify delivers by a non-blocking send on each subscriber's
// buffered channel, so a slow subscriber never holds up the notifier, and
// nothing is left running for Close to stop.
package mem

import (
	"context"
	"slices"
	"sync"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/store"
)

var _ bus.Bus = (*Bus)(nil)

// Bus is an in-process bus.Bus. The zero value is not usable; call New.
//
// Locking: mu is the only lock, and nothing is called out to while it is
// held (every channel send under it is non-blocking), so there is no lock
// order to keep.
type Bus struct {
	// mu is a read-write lock because Notify, the hot path (once per
	// recipient device of every send), only reads the maps, so senders do
	// not queue behind one another; BenchmarkNotifyParallel measured it
	// faster than a plain mutex. A non-blocking channel send is safe under
	// the read lock; only the maps need the write lock.
	mu     sync.RWMutex
	closed bool
	subs   map[store.DeviceID][]*subscription
	claims map[store.DeviceID]*claim
}

// subscription is one Subscribe call. wake has room for one value: a
// pending value already means "look at the queue", so further
// notifications before the subscriber reads add nothing and are dropped.
type subscription struct {
	wake chan struct{}
}

// claim is one Claim call. displaced fires at most once, because a claim
// leaves the map when it is displaced and only the claim in the map can be
// displaced.
type claim struct {
	displaced chan struct{}
}

// never is what Subscribe returns after Close: a channel nothing ever
// sends on. It is shared, since no caller can send on or close a receive-
// only channel.
var never = make(chan struct{})

// New returns an empty, open bus.
func New() *Bus {
	return &Bus{
		subs:   make(map[store.DeviceID][]*subscription),
		claims: make(map[store.DeviceID]*claim),
	}
}

// Notify wakes every subscriber of id. It never blocks and does not
// allocate. It ignores ctx: there is nothing to wait for, and a sender whose
// request was cancelled after its envelopes were stored should still wake
// the recipient.
func (b *Bus) Notify(_ context.Context, id store.DeviceID) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return bus.ErrClosed
	}
	for _, s := range b.subs[id] {
		select {
		case s.wake <- struct{}{}:
		default: // a wake-up is already pending: coalesce
		}
	}
	return nil
}

// Subscribe registers a subscriber of id. Notifications made after it
// returns reach the channel. After Close it returns a channel that never
// receives (Subscribe has no error to report it with) and a no-op cancel.
func (b *Bus) Subscribe(id store.DeviceID) (<-chan struct{}, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return never, func() {}
	}
	s := &subscription{wake: make(chan struct{}, 1)}
	b.subs[id] = append(b.subs[id], s)
	return s.wake, func() { b.unsubscribe(id, s) }
}

// unsubscribe removes s from id's subscribers. It is idempotent: a second
// call, or a call after Close emptied the maps, finds nothing to remove.
func (b *Bus) unsubscribe(id store.DeviceID, s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	subs := b.subs[id]
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
		delete(b.subs, id) // the map holds only devices with subscribers
	} else {
		b.subs[id] = subs[:last]
	}
}

// Claim makes the caller the holder of id's live stream, displacing the
// previous holder, if any. A Claim whose ctx is already done fails with the
// context's error and displaces no one: its caller has gone, and
// displacing the live stream for it would only disconnect the device.
func (b *Bus) Claim(ctx context.Context, id store.DeviceID) (<-chan struct{}, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, nil, bus.ErrClosed
	}
	if old := b.claims[id]; old != nil {
		// The buffer is empty (a displaced claim leaves the map, so old
		// was never displaced before); the select only makes sure a
		// broken invariant could never block while mu is held.
		select {
		case old.displaced <- struct{}{}:
		default:
		}
	}
	c := &claim{displaced: make(chan struct{}, 1)}
	b.claims[id] = c
	return c.displaced, func() { b.release(id, c) }, nil
}

// release drops c if it still holds id. A displaced claim no longer holds
// it, so its late cancel leaves the new holder alone.
func (b *Bus) release(id store.DeviceID, c *claim) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.claims[id] == c {
		delete(b.claims, id)
	}
}

// Close marks the bus closed: later Notify and Claim calls return
// bus.ErrClosed. It does not send on or close any channel handed out:
// the streams are being shut down by the server anyway. Close is
// idempotent and always returns nil.
func (b *Bus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	// Drop the maps so outstanding cancel funcs become no-ops (reading a
	// nil map finds nothing) and the channels can be collected once their
	// holders let go.
	b.subs, b.claims = nil, nil
	return nil
}
