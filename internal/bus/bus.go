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

	"github.com/parleyim/parley/internal/store"
)

// Bus carries wake-ups for devices and stream-takeover notices.
type Bus interface {
	// Notify tells whoever serves device id that its queue may have grown.
	Notify(ctx context.Context, id store.DeviceID) error
	// Subscribe returns a channel that receives a value after each Notify
	// for id (coalesced: several notifications may arrive as one) until
	// cancel is called. The channel is never closed by the bus.
	Subscribe(id store.DeviceID) (wake <-chan struct{}, cancel func())

	// Claim announces that this node now serves id's live stream and
	// returns a channel that receives a value when another stream for id
	// (on this node or another) claims it later: the holder must then
	// close its stream. cancel releases the claim.
	Claim(ctx context.Context, id store.DeviceID) (displaced <-chan struct{}, cancel func(), err error)

	// Close releases the bus.
	Close() error
}
