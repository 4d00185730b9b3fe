// Package bus defines the server's notification seam, as described in
// docs/server.md §5: "device X has mail". The queue in the store is the
// truth; a notification only wakes the stream that serves the device, so a
// lost or duplicated notification costs latency, never a message.
//
// Engines: internal/bus/mem (in-process, the default) and, for several
// parleyd nodes, internal/bus/nats (NATS core pub/sub). internal/bus/bustest is the
// conformance suite both run.
package bus

import (
	"context"
	"math"

	"github.com/parleyim/parley/internal/store"
)

// Unknown is the value a wake-up carries when the notification did not
// say how far the queue reaches (a Notify with seq 0, or a networked
// engine's resynchronisation after a reconnect): the subscriber must read
// its queue.
const Unknown uint64 = math.MaxUint64

// Bus carries wake-ups for devices and stream-takeover notices.
type Bus interface {
	// Notify tells whoever serves device id that its queue has grown, up
	// to seq: the largest Seq the caller just stored for id, or 0 if it
	// does not know one (the wake-up then carries Unknown).
	Notify(ctx context.Context, id store.DeviceID, seq uint64) error
	// Subscribe returns a channel that receives a value after each Notify
	// for id until cancel is called. Wake-ups are coalesced: a value
	// received is the largest seq of every notification since the
	// previous value was received, or Unknown if any of them was Unknown,
	// so a subscriber that has already delivered up to that Seq need not
	// read its queue. The channel is never closed by the bus.
	Subscribe(id store.DeviceID) (wake <-chan uint64, cancel func())

	// Claim announces that this node now serves id's live stream and
	// returns a channel that receives a value when another stream for id
	// (on this node or another) claims it later: the holder must then
	// close its stream. cancel releases the claim.
	Claim(ctx context.Context, id store.DeviceID) (displaced <-chan struct{}, cancel func(), err error)

	// Close releases the bus.
	Close() error
}
