// Package mem implements bus.Bus in process, for a single parleyd node, as
// described in docs/server.md §5.
//
// The bus is a hub of subscriptions (internal/bus/hub, which the NATS
// engine shares) plus a map of the current stream claim of each device. It
// starts no goroutines: Notify delivers by a non-blocking send on each
// subscriber's buffered channel, so a slow subscriber never holds up the
// notifier, and nothing is left running for Close to stop.
package mem

import (
	"context"
	"sync"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/bus/hub"
	"github.com/parleyim/parley/internal/store"
)

var _ bus.Bus = (*Bus)(nil)

// Bus is an in-process bus.Bus. The zero value is not usable; call New.
//
// Locking: the hub has its own lock and mu guards the claims; neither is
// held while taking the other, and nothing is called out to while mu is
// held (every channel send under it is non-blocking), so there is no lock
// order to keep.
type Bus struct {
	hub hub.Hub

	mu     sync.Mutex
	closed bool
	claims map[store.DeviceID]*claim
}

// claim is one Claim call. displaced fires at most once, because a claim
// leaves the map when it is displaced and only the claim in the map can be
// displaced.
type claim struct {
	displaced chan struct{}
}

// New returns an empty, open bus.
func New() *Bus {
	return &Bus{claims: make(map[store.DeviceID]*claim)}
}

// Notify wakes every subscriber of id with seq. It never blocks and does
// not allocate. It ignores ctx: there is nothing to wait for, and a sender whose
// request was cancelled after its envelopes were stored should still wake
// the recipient.
func (b *Bus) Notify(_ context.Context, id store.DeviceID, seq uint64) error {
	if !b.hub.Wake(id, seq) {
		return bus.ErrClosed
	}
	return nil
}

// Subscribe registers a subscriber of id. Notifications made after it
// returns reach the channel. After Close it returns a channel that never
// receives (Subscribe has no error to report it with) and a no-op cancel.
func (b *Bus) Subscribe(id store.DeviceID) (<-chan uint64, func()) {
	return b.hub.Subscribe(id)
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
	b.hub.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	// Drop the map so outstanding cancel funcs become no-ops and the
	// channels can be collected once their holders let go.
	b.claims = nil
	return nil
}
