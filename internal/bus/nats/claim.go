package nats

// # Claims
//
// One live stream per device across the cluster (docs/server.md §5.2): a
// Claim on any node displaces the holder on every node. For that the nodes
// must agree on which of two claims is the newer, and NATS gives no order
// to agree on: a subscriber receives one connection's messages in the
// order that connection published them, but messages from different
// connections reach different subscribers in different orders (in a NATS
// cluster, routinely: each node hears its own server's publishers first).
// "Arrived later" therefore cannot mean "newer"; two nodes claiming at the
// same moment could each see the other's claim first, and both survive.
//
// Instead every claim carries a stamp (time, token), and stamps are totally
// ordered: by time, then by token (16 random bytes, so two claims tie with
// negligible probability). Every bus compares the same two stamps the same
// way, whatever order the messages came in, so all nodes agree.
//
// The time is a hybrid logical clock: max(wall clock in ns, clock+1), where
// clock is the largest time the bus has issued or seen in any claim
// message, for any device. Hence a claim is newer than
//
//  1. every claim its bus had received before it (causality): the local
//     holder it replaces, and any claim from another node whose message
//     had arrived. A device that reconnects after its old stream's claim
//     was delivered always wins, whatever the clocks say;
//  2. every claim made more than the clock skew between the two nodes
//     before it, even one whose message is still in flight (real time).
//     This is what "a Claim displaces every holder whose Claim returned
//     before it began" (bustest) needs when the two are microseconds
//     apart;
//
// and two claims that are neither (a real race) are ordered arbitrarily,
// but identically on every node.
//
// A bus tracks only its local holders, at most one per device (a newer
// local claim displaces the older at once, as in mem). On each claim
// message for a device it holds:
//
//   - newer than the holder: the holder is displaced: its channel fires and
//     it leaves the map, so it fires at most once, and its late cancel
//     cannot release anything;
//   - older than the holder and from another bus: that bus evidently did not
//     know our claim when it made its own (its claim crossed ours, or it
//     missed our message). We announce ours again, so its holder, if it
//     still holds, is displaced. In a plain race this is redundant (both
//     messages arrive anyway); it is what repairs a lost message, see below;
//   - anything else (our own echo, an older claim of ours): nothing.
//
// What a race can and cannot do, every message being delivered: of claims
// made concurrently on any nodes, exactly the newest survives and every
// other is displaced. Never do two survive; never are all displaced (unless
// the newest is cancelled, when its stream ended on its own). Skewed clocks
// cannot make two survive either; they can only make a claim lose to an
// older one made within the skew whose message was still in flight, so the
// newest stream is told to close and its client reconnects.
//
// Messages can be lost: NATS core keeps nothing for a disconnected node,
// and drops messages for a subscription that falls far behind (a slow
// consumer; nats.go reports it to the connection's error handler). A holder
// that missed a newer claim survives beside it until the next claim for
// that device anywhere, or until its node reconnects: after a reconnect a
// bus announces every holder again, and a node holding a newer claim
// answers, displacing ours. A slow consumer without a reconnect is repaired
// only by the next claim.
//
// A buggy node announcing a far-future time drags every clock forward;
// stamps then still order causally, and wall-clock time catches up.

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

const (
	// claimVersion is the first byte of a claim message, so that a later
	// format can be told apart during a rolling upgrade. A bus ignores
	// claims it cannot parse.
	claimVersion = 1
	tokenSize    = 16
	// claimSize is version (1) || origin (8) || time, big-endian ns (8) ||
	// token (16).
	claimSize = 1 + originSize + 8 + tokenSize
)

// stamp orders claims; see the comment at the top of this file.
type stamp struct {
	time  uint64
	token [tokenSize]byte
}

// before reports whether s is older than t.
func (s stamp) before(t stamp) bool {
	if s.time != t.time {
		return s.time < t.time
	}
	return bytes.Compare(s.token[:], t.token[:]) < 0
}

// holder is one local Claim call.
type holder struct {
	stamp     stamp
	displaced chan struct{}
}

// displace fires h's channel. Callers remove h from the holders map in the
// same critical section, so it fires at most once and the send never
// blocks; the select only makes sure a broken invariant could not block
// while mu is held.
func (h *holder) displace() {
	select {
	case h.displaced <- struct{}{}:
	default:
	}
}

// Claim makes the caller the holder of id's live stream, displacing the
// previous holder on this node at once and on the other nodes when they
// receive the announcement. It does not wait for the server: ordering comes
// from the stamp, not from delivery (see above).
//
// A Claim whose ctx is already done fails with the context's error and
// displaces no one: its caller has gone, and displacing the live stream
// for it would only disconnect the device. If the announcement cannot be
// published, Claim fails and holds nothing; the holder it displaced locally
// stays displaced (both streams end, the client reconnects).
func (b *Bus) Claim(ctx context.Context, id store.DeviceID) (<-chan struct{}, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	h := &holder{displaced: make(chan struct{}, 1)}
	primitives.Random(h.stamp.token[:])

	b.mu.Lock()
	if b.holders == nil {
		b.mu.Unlock()
		return nil, nil, bus.ErrClosed
	}
	b.clock = max(b.clock+1, uint64(time.Now().UnixNano()))
	h.stamp.time = b.clock
	if old := b.holders[id]; old != nil {
		old.displace()
	}
	b.holders[id] = h
	b.mu.Unlock()

	if err := b.announce(id, h.stamp); err != nil {
		b.release(id, h)
		return nil, nil, b.publishError("claim", err)
	}
	return h.displaced, func() { b.release(id, h) }, nil
}

// release drops h if it still holds id. A displaced holder no longer holds
// it, so its late cancel leaves the new holder alone. Nothing is published:
// other nodes keep no record of our holders, and the next claim for id, on
// any node, displaces no one here.
func (b *Bus) release(id store.DeviceID, h *holder) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holders[id] == h {
		delete(b.holders, id)
	}
}

// onClaim handles a claim announced by any bus, this one included (a
// connection from New may echo).
func (b *Bus) onClaim(m *nats.Msg) {
	id, ok := parseSubject(m.Subject, claimPrefix)
	if !ok {
		return
	}
	origin, s, ok := parseClaim(m.Data)
	if !ok {
		return
	}
	b.mu.Lock()
	if b.holders == nil {
		b.mu.Unlock()
		return
	}
	b.clock = max(b.clock, s.time)
	var answer *holder
	switch h := b.holders[id]; {
	case h == nil:
	case h.stamp.before(s):
		h.displace()
		delete(b.holders, id)
	case s.before(h.stamp) && origin != b.origin:
		answer = h
	}
	b.mu.Unlock()
	if answer != nil {
		// Best effort: if it fails, the connection is closed or
		// reconnecting, and resync announces every holder again.
		_ = b.announce(id, answer.stamp)
	}
}

// announceAll announces every local holder again (after a reconnect).
func (b *Bus) announceAll() {
	type held struct {
		id    store.DeviceID
		stamp stamp
	}
	b.mu.Lock()
	all := make([]held, 0, len(b.holders))
	for id, h := range b.holders {
		all = append(all, held{id, h.stamp})
	}
	b.mu.Unlock()
	for _, h := range all {
		if b.announce(h.id, h.stamp) != nil {
			return // closed, or disconnected again: the next resync retries
		}
	}
}

// announce publishes a claim message for id.
func (b *Bus) announce(id store.DeviceID, s stamp) error {
	return b.nc.Publish(subject(claimPrefix, id), appendClaim(make([]byte, 0, claimSize), b.origin, s))
}

// appendClaim appends to dst the claim message of stamp s from the bus
// whose origin is origin: claimVersion, origin, s.time (big-endian),
// s.token. The layout is pinned by testdata/vectors/nats.json.
func appendClaim(dst []byte, origin [originSize]byte, s stamp) []byte {
	dst = append(dst, claimVersion)
	dst = append(dst, origin[:]...)
	dst = binary.BigEndian.AppendUint64(dst, s.time)
	return append(dst, s.token[:]...)
}

// parseClaim is the inverse of appendClaim. It accepts exactly claimSize
// bytes starting with claimVersion, and nothing else.
func parseClaim(msg []byte) (origin [originSize]byte, s stamp, ok bool) {
	if len(msg) != claimSize || msg[0] != claimVersion {
		return origin, s, false
	}
	msg = msg[1:]
	msg = msg[copy(origin[:], msg):]
	s.time = binary.BigEndian.Uint64(msg)
	copy(s.token[:], msg[8:])
	return origin, s, true
}
