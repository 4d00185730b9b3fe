package server

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/parleyim/parley/internal/store"
)

// Handing envelopes from the send path to a live stream on the same node
// (docs/server.md §5.2).
//
// A send stores its envelopes, then wakes the recipients' streams, which
// would read them back from the store. When a recipient's stream runs on
// the node that handled the send, the send also hands it the envelopes it
// just stored, and the stream pushes them without reading its queue — if
// it can prove it misses nothing:
//
//   - the store reports each stored envelope's Prev: no envelope of the
//     device has a Seq between Prev and the envelope's own (store.Envelope);
//     a handed-off envelope whose Prev is the stream's cursor (the last Seq
//     it pushed) is the next one of its queue;
//   - every wake-up carries the largest Seq notified (bus.Bus), from any
//     node; once the chain of handed-off envelopes reaches it, everything
//     notified has been pushed.
//
// Anything else — a gap in the chain (an envelope stored through another
// node, or one this stream's hand-off dropped), a wake-up without a Seq,
// a hand-off that overflowed — and the round reads the queue as before.
// The queue stays the truth: a hand-off only saves a read, and losing one
// costs that read.

const (
	// handoffMaxEnvelopes is how many envelopes wait in one stream's
	// hand-off before it overflows and the stream reads its queue instead.
	handoffMaxEnvelopes = 64
	// handoffMaxBytes bounds the bodies waiting in one stream's hand-off.
	handoffMaxBytes = 256 << 10
	// handoffNodeBytes bounds the bodies waiting in every hand-off of the
	// node together: a flood towards slow readers costs them queue reads,
	// not the node's memory.
	handoffNodeBytes = 64 << 20
)

// handoffs is the node's registry of live streams that take hand-offs.
type handoffs struct {
	mu      sync.RWMutex
	streams map[store.DeviceID]*handoff
	// bytes is the size of every body waiting in a hand-off of the node.
	bytes atomic.Int64
}

// handoff is one stream's waiting envelopes.
type handoff struct {
	mu       sync.Mutex
	envs     []store.Envelope
	bytes    int
	overflow bool // something was dropped since the stream last took
}

// register makes h the hand-off of id's stream on this node, replacing an
// older stream's; the returned func removes it again (if still current).
func (hs *handoffs) register(id store.DeviceID, h *handoff) (unregister func()) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.streams == nil {
		hs.streams = make(map[store.DeviceID]*handoff)
	}
	hs.streams[id] = h
	return func() {
		hs.mu.Lock()
		if hs.streams[id] == h {
			delete(hs.streams, id)
		}
		hs.mu.Unlock()
		h.mu.Lock()
		hs.bytes.Add(-int64(h.bytes))
		h.envs, h.bytes = nil, 0
		h.mu.Unlock()
	}
}

// offer hands e (just stored, with its Seq and Prev) to the stream of
// e.Device on this node, if there is one.
func (hs *handoffs) offer(e store.Envelope) {
	hs.mu.RLock()
	h := hs.streams[e.Device]
	hs.mu.RUnlock()
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(e.Body)
	if len(h.envs) >= handoffMaxEnvelopes || h.bytes+n > handoffMaxBytes {
		h.overflow = true
		return
	}
	if hs.bytes.Add(int64(n)) > handoffNodeBytes {
		hs.bytes.Add(-int64(n))
		h.overflow = true
		return
	}
	h.envs = append(h.envs, e)
	h.bytes += n
}

// take empties h and returns what waited, in Seq order, and whether
// anything was dropped since the last take.
func (hs *handoffs) take(h *handoff) (envs []store.Envelope, overflow bool) {
	h.mu.Lock()
	envs, overflow = h.envs, h.overflow
	hs.bytes.Add(-int64(h.bytes))
	h.envs, h.bytes, h.overflow = nil, 0, false
	h.mu.Unlock()
	// Sends to one device finish in any order; their Seqs say the order.
	slices.SortFunc(envs, func(a, b store.Envelope) int { return cmp.Compare(a.Seq, b.Seq) })
	return envs, overflow
}
