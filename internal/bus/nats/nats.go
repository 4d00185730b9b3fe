// Package nats implements bus.Bus on NATS core pub/sub, for several parleyd
// nodes, as described in docs/server.md §5.5.
//
// # Subjects
//
// Every node publishes on and listens to two subject families, one subject
// per device (the id in lower-case hex):
//
//	parley.mail.<id>    "device id has mail up to seq"; payload: the publishing bus's origin (8 bytes),
//	                    then seq (8 bytes, big-endian; absent from a node before seqs: Unknown)
//	parley.claim.<id>   "a stream for id was claimed"; payload: see claim.go
//
// testdata/vectors/nats.json pins the subjects and both payloads
// (internal/cmd/vectorgen/busnats.go writes it from the layouts above).
//
// A bus opens one wildcard subscription per family, not one per device, and
// fans out in process through internal/bus/hub: Subscribe never touches the
// network, so it cannot fail, and a node serving 100,000 streams keeps two
// subscriptions on the NATS server. The cost is that every node receives
// every notification of the cluster, including those for devices it does
// not serve; at a handful of nodes that is cheaper than 100,000 SUB and
// UNSUB round trips as streams come and go.
//
// # Delivery
//
// NATS core is at most once: a message published while a node is
// disconnected, or dropped because a node's subscription fell too far
// behind (a "slow consumer"), is gone. The queue in the store is the truth,
// so a lost notification costs latency only; to bound that latency, a bus
// wakes every local subscriber after each reconnect (a spurious wake-up
// costs one queue read), and announces its claims again (claim.go).
//
// Notify wakes the local subscribers directly, without a round trip through
// the server, so streams on the same node are woken even while NATS is
// down; each message carries its bus's origin so that the bus ignores its
// own echo instead of waking its subscribers twice.
package nats

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/bus/hub"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

var _ bus.Bus = (*Bus)(nil)

const (
	mailPrefix  = "parley.mail."
	claimPrefix = "parley.claim."

	// originSize is the length of a bus's origin: random, so two buses
	// collide with probability 2⁻⁶⁴ per pair, and a collision costs only
	// notifications the two would ignore from each other.
	originSize = 8
	// mailSize is the length of a mail notification's payload: the
	// publishing bus's origin, then seq (8 bytes, big-endian).
	mailSize = originSize + 8

	// resyncTimeout bounds the round trip a bus makes after a reconnect to
	// be sure the server has its subscriptions again (see resync).
	resyncTimeout = 10 * time.Second
)

// Bus is a bus.Bus on a NATS connection. Each parleyd node has one; the
// nodes of a cluster reach one another through the NATS server (or
// cluster) they share. The zero value is not usable; call New or Connect.
//
// Locking: the hub has its own lock and mu guards the claim state; neither
// is held while taking the other, and no NATS call is made while mu is
// held (a Publish can block on a full socket), so there is no lock order
// to keep.
type Bus struct {
	nc     *nats.Conn
	owned  bool // Close closes nc: it came from Connect
	origin [originSize]byte

	hub hub.Hub

	mail, claims *nats.Subscription

	// status reports reconnects to the resync goroutine; stop and done
	// end it at Close.
	status chan nats.Status
	stop   context.CancelFunc
	done   chan struct{}

	// closed is set first thing in Close, so that a publish failing
	// because Close closed the connection reports bus.ErrClosed.
	closed    atomic.Bool
	closeOnce sync.Once

	mu      sync.Mutex
	clock   uint64                     // see claim.go
	holders map[store.DeviceID]*holder // nil once closed
}

// Connect dials the NATS server at url (a comma-separated list for a
// cluster) and returns a bus that owns the connection: Close closes it.
//
// The connection reconnects forever (a parleyd node must not give up on
// the bus after the client's default of 60 attempts) and does not echo the
// bus's own messages back to it. opts are applied after those defaults, so
// they can override them (credentials, TLS, a name for the server's
// monitoring).
func Connect(url string, opts ...nats.Option) (*Bus, error) {
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.NoEcho()}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		// Not the URL: it may carry credentials.
		return nil, fmt.Errorf("bus/nats: connect: %w", err)
	}
	b, err := New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.owned = true
	return b, nil
}

// New returns a bus on nc, which the caller keeps: Close leaves it open.
// Several buses may share one connection. nc should reconnect forever
// (nats.MaxReconnects(-1)); once it closes, the bus fails every Notify and
// Claim.
//
// New subscribes and waits for the server to confirm, so that a
// notification published anywhere after New returns reaches this bus.
func New(nc *nats.Conn) (*Bus, error) {
	b := &Bus{
		nc:      nc,
		holders: make(map[store.DeviceID]*holder),
		done:    make(chan struct{}),
	}
	primitives.Random(b.origin[:])
	// Registered before subscribing, so that no reconnect goes unnoticed.
	// CONNECTED is reported after a reconnect only: the first connection
	// was made before we registered.
	b.status = nc.StatusChanged(nats.CONNECTED)
	fail := func(err error) (*Bus, error) {
		nc.RemoveStatusListener(b.status)
		for _, sub := range []*nats.Subscription{b.mail, b.claims} {
			if sub != nil {
				_ = sub.Unsubscribe()
			}
		}
		return nil, fmt.Errorf("bus/nats: subscribe: %w", err)
	}
	var err error
	if b.mail, err = nc.Subscribe(mailPrefix+"*", b.onMail); err != nil {
		return fail(err)
	}
	if b.claims, err = nc.Subscribe(claimPrefix+"*", b.onClaim); err != nil {
		return fail(err)
	}
	// Without this round trip, a Notify made on another node right after
	// New returns could reach the server before our SUB and be lost.
	if err := nc.Flush(); err != nil {
		return fail(err)
	}
	var ctx context.Context
	ctx, b.stop = context.WithCancel(context.Background())
	go b.watch(ctx)
	return b, nil
}

// Notify wakes the local subscribers of id and publishes the notification
// for the other nodes. It never waits for a subscriber or for the server
// (the publish is buffered; nats.go flushes it from its own goroutine), and
// ignores ctx for the same reason as mem's Notify: a sender whose request
// was cancelled after its envelopes were stored should still wake the
// recipient.
//
// An error means the other nodes were not told (the connection is closed,
// or its reconnect buffer is full); the local subscribers were woken
// anyway, and the caller may ignore it: the mail waits in the queue.
func (b *Bus) Notify(_ context.Context, id store.DeviceID, seq uint64) error {
	if !b.hub.Wake(id, seq) {
		return bus.ErrClosed
	}
	var buf [mailSize]byte
	if err := b.nc.Publish(subject(mailPrefix, id), appendMail(buf[:0], b.origin, seq)); err != nil {
		return b.publishError("notify", err)
	}
	return nil
}

// Subscribe registers a subscriber of id. It does not touch the network:
// the bus's wildcard subscription already receives every notification.
// After Close it returns a channel that never receives and a no-op cancel.
func (b *Bus) Subscribe(id store.DeviceID) (<-chan uint64, func()) {
	return b.hub.Subscribe(id)
}

// onMail handles a notification from any bus of the cluster. It runs on the
// subscription's goroutine, which nats.go feeds from an in-memory queue:
// Wake never blocks, so the queue drains as fast as messages arrive.
func (b *Bus) onMail(m *nats.Msg) {
	id, ok := parseSubject(m.Subject, mailPrefix)
	if !ok {
		return
	}
	origin, seq, ok := parseMail(m.Data)
	if ok && origin == b.origin {
		return // our own Notify, echoed: its local subscribers are woken already
	}
	// A payload that does not parse (!ok, seq 0) wakes with seq 0, that is
	// Unknown: the subject names a device, and a wake-up with Unknown is
	// always safe (the stream reads its queue, which is the truth; the
	// cost is one read), whereas ignoring it could leave mail waiting
	// until the next notification, say from a node of a later release
	// with another layout. Only a payload that parses can be our echo.
	b.hub.Wake(id, seq)
}

// appendMail appends to dst the payload of a mail notification from the bus
// whose origin is origin: origin, then seq, big-endian. The layout is
// pinned by testdata/vectors/nats.json.
func appendMail(dst []byte, origin [originSize]byte, seq uint64) []byte {
	dst = append(dst, origin[:]...)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// parseMail is the inverse of appendMail. A payload of exactly originSize
// bytes, from a node of a release before seqs, parses with seq 0
// (Unknown, as Notify's seq 0 does); so does a full payload with seq 0.
// Any other length does not parse, and then origin and seq are zero.
func parseMail(payload []byte) (origin [originSize]byte, seq uint64, ok bool) {
	switch len(payload) {
	case originSize:
		copy(origin[:], payload)
		return origin, 0, true
	case mailSize:
		copy(origin[:], payload)
		return origin, binary.BigEndian.Uint64(payload[originSize:]), true
	}
	return origin, 0, false
}

// watch runs resync after every reconnect, until Close.
func (b *Bus) watch(ctx context.Context) {
	defer close(b.done)
	for range b.status {
		b.resync(ctx)
	}
}

// resync repairs what a disconnection may have lost: messages published by
// other nodes while this one was away are gone (NATS core keeps nothing).
// nats.go has re-sent our subscriptions before reporting CONNECTED; after a
// round trip the server surely has them, so from then on nothing more is
// missed, and then:
//   - every local subscriber is woken, to read whatever was queued for it
//     in the meantime;
//   - every local claim is announced again, so that a claim made elsewhere
//     during the outage, which this bus missed, is settled (claim.go).
//
// If the round trip fails, the connection dropped again and another
// CONNECTED will follow; resync does the rest anyway, since it is cheap
// and harmless.
func (b *Bus) resync(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, resyncTimeout)
	defer cancel()
	_ = b.nc.FlushWithContext(ctx)
	if ctx.Err() != nil && b.closed.Load() {
		return
	}
	b.hub.WakeAll()
	b.announceAll()
}

// Close unsubscribes, stops the bus's goroutine and, if the bus came from
// Connect, closes the connection, which flushes what is still buffered.
// Later Notify and Claim calls return bus.ErrClosed. Close sends on and
// closes no channel it handed out: the streams are being shut down by the
// server anyway. It is idempotent and returns nil.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.hub.Close()
		b.mu.Lock()
		b.holders = nil // outstanding cancel funcs become no-ops
		b.mu.Unlock()

		// Errors here mean the connection is closed already, which
		// unsubscribes everything anyway.
		_ = b.mail.Unsubscribe()
		_ = b.claims.Unsubscribe()
		b.stop()
		b.nc.RemoveStatusListener(b.status) // closes it: watch returns
		<-b.done
		if b.owned {
			b.nc.Close()
		}
	})
	return nil
}

// publishError reports a failed publish: bus.ErrClosed if Close closed the
// connection under it, else the NATS error.
func (b *Bus) publishError(what string, err error) error {
	if b.closed.Load() && errors.Is(err, nats.ErrConnectionClosed) {
		return bus.ErrClosed
	}
	return fmt.Errorf("bus/nats: %s: %w", what, err)
}

// subject returns prefix followed by id in lower-case hex.
func subject(prefix string, id store.DeviceID) string {
	var buf [64]byte // on the stack: the string conversion is the one allocation
	n := copy(buf[:], prefix)
	n += hex.Encode(buf[n:], id[:])
	return string(buf[:n])
}

// parseSubject is the inverse of subject. It rejects anything else, upper-
// case hex included, so that one device has exactly one subject.
func parseSubject(subj, prefix string) (store.DeviceID, bool) {
	var id store.DeviceID
	if len(subj) != len(prefix)+2*len(id) || subj[:len(prefix)] != prefix {
		return id, false
	}
	hexID := subj[len(prefix):]
	for i := range id {
		hi, ok1 := fromHex(hexID[2*i])
		lo, ok2 := fromHex(hexID[2*i+1])
		if !ok1 || !ok2 {
			return id, false
		}
		id[i] = hi<<4 | lo
	}
	return id, true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
