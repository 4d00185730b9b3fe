package server

import (
	"context"
	"errors"
	"slices"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/username"
	"github.com/parleyim/parley/internal/wire"
)

type relayService struct{ s *Server }

const (
	// fetchPage is how many envelopes a stream reads from the store at once.
	fetchPage = 256
	// prekeyCheckInterval bounds how often a stream asks the store for its
	// device's prekey counts after the first drain.
	prekeyCheckInterval = time.Minute
)

// Send queues one message for every current device of the recipient and
// every other current device of the sender (docs/server.md §5.1). The set
// of envelopes must match those devices exactly; otherwise nothing is
// stored and the error names the missing, extra and stale devices.
func (r *relayService) Send(ctx context.Context, req *connect.Request[parleyv1.SendRequest]) (*connect.Response[parleyv1.SendResponse], error) {
	s, dev, m := r.s, caller(ctx), req.Msg
	if len(m.MessageId) != 16 {
		return nil, badRequest("message id must be 16 bytes, got %d", len(m.MessageId))
	}
	if len(m.Envelopes) > 2*identity.MaxDevices {
		return nil, errTooManyEnvelopes
	}
	recipient, err := username.Normalize(m.Recipient)
	if err != nil {
		return nil, err
	}
	now := s.now()
	// Each envelope is checked once; which devices it must cover is
	// checked against the device sets below.
	envs := make([]store.Envelope, 0, len(m.Envelopes))
	got := make(map[store.DeviceID]bool, len(m.Envelopes))
	for _, e := range m.Envelopes {
		id, err := deviceID(e.DeviceId)
		if err != nil {
			return nil, err
		}
		if got[id] {
			return nil, badRequest("two envelopes for device %x", id[:])
		}
		got[id] = true
		if len(e.Body) > s.cfg.MaxEnvelopeSize {
			return nil, badRequest("envelope of %d bytes exceeds the limit of %d bytes (MaxEnvelopeSize)", len(e.Body), s.cfg.MaxEnvelopeSize)
		}
		if _, err := wire.UnmarshalEnvelope(e.Body); err != nil {
			return nil, err
		}
		envs = append(envs, store.Envelope{
			Device: id, MessageID: store.MessageID(m.MessageId),
			SenderUsername: dev.Username, SenderDevice: dev.ID,
			Body: e.Body, Created: now, Expires: now.Add(s.cfg.MessageTTL),
		})
	}
	// First against the device sets this node remembers (nodecache.go);
	// a send they refuse, or the store finds addressed to a device that
	// is gone, is checked again against the store before it is refused.
	for fresh := false; ; fresh = true {
		sets, cached, err := s.deviceSets(ctx, fresh, recipient, dev.Username)
		if err != nil {
			return nil, err
		}
		if len(sets[0]) == 0 {
			return nil, store.ErrNotFound
		}
		if mm := matchDevices(got, sets, dev.ID); mm != nil {
			if cached {
				continue
			}
			s.classifyStale(ctx, mm, recipient, dev.Username)
			sortIDs(mm.missing)
			sortIDs(mm.extra)
			sortIDs(mm.stale)
			return nil, mm
		}
		if len(envs) == 0 {
			break
		}
		err = s.store.Enqueue(ctx, store.Send{MaxQueue: s.cfg.MaxQueue, Envelopes: envs})
		var ud *store.UnknownDeviceError
		if errors.As(err, &ud) && cached {
			// Removed since this node read the sets.
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	s.metrics.enqueued.Add(float64(len(envs)))
	for _, e := range envs {
		if e.Seq != 0 { // 0: a duplicate, stored before
			s.handoffs.offer(e)
		}
		// A lost notification costs only latency: the queue is the truth.
		_ = s.bus.Notify(ctx, e.Device, e.Seq)
	}
	// Empty: net/http then sends the answer as one HEADERS frame, not a
	// HEADERS and a DATA frame with a wait in between (SendResponse).
	return connect.NewResponse(&parleyv1.SendResponse{}), nil
}

// matchDevices compares the devices a send has envelopes for (got) with
// the recipient's and the sender's current devices (sets, recipient
// first), less the sending device. It returns nil if they are the same.
func matchDevices(got map[store.DeviceID]bool, sets [][]store.DeviceID, sender store.DeviceID) *mismatch {
	want := make(map[store.DeviceID]bool, len(sets[0])+len(sets[1]))
	for _, set := range sets {
		for _, id := range set {
			want[id] = true
		}
	}
	delete(want, sender)
	var mm mismatch
	for id := range got {
		if !want[id] {
			mm.extra = append(mm.extra, id)
		}
	}
	for id := range want {
		if !got[id] {
			mm.missing = append(mm.missing, id)
		}
	}
	if len(mm.missing) == 0 && len(mm.extra) == 0 {
		return nil
	}
	return &mm
}

// classifyStale moves the extra devices that used to be in one of the
// accounts' device lists from extra to stale: the client's copy of that list
// is out of date, rather than wrong.
func (s *Server) classifyStale(ctx context.Context, mm *mismatch, accounts ...string) {
	if len(mm.extra) == 0 {
		return
	}
	known := map[store.DeviceID]bool{}
	for _, name := range accounts {
		cur, err := s.store.DeviceList(ctx, name, 0)
		if err != nil {
			continue
		}
		for v := uint64(1); v < cur.Version; v++ {
			l, err := s.store.DeviceList(ctx, name, v)
			if err != nil {
				continue
			}
			signed, err := identity.ParseSignedDeviceList(l.Signed)
			if err != nil {
				continue
			}
			list, err := signed.Verify(nil)
			if err != nil {
				continue
			}
			for _, e := range list.Devices {
				known[store.DeviceID(e.Device.ID())] = true
			}
		}
	}
	extra := mm.extra[:0]
	for _, id := range mm.extra {
		if known[id] {
			mm.stale = append(mm.stale, id)
		} else {
			extra = append(extra, id)
		}
	}
	mm.extra = extra
}

func sortIDs(ids []store.DeviceID) {
	slices.SortFunc(ids, func(a, b store.DeviceID) int { return slices.Compare(a[:], b[:]) })
}

// Receive streams the device's queue (docs/server.md §5.2): everything
// queued, in order, then a Drained marker, then new envelopes as they
// arrive. One live stream per device: a newer one displaces this one.
//
// A node holds one Receive per connected device, most of them idle, so it
// is written for memory (docs/performance.md, "Idle streams"):
//
//   - An idle stream's goroutine waits in Receive's select, and Go shrinks
//     a goroutine's stack (by halves, at garbage collections) only while it
//     uses less than a quarter of it. So each round's work — store reads,
//     encoding, sending — runs in delivery.round, whose frames are gone
//     while the stream waits. The frames that stay (net/http's, connect's,
//     the interceptor's and Receive's) still come to about 1.7 KiB, 2.5
//     with the runtime's guard, over the quarter of 8 KiB: the stack stays
//     at 8 KiB (docs/performance.md, "Idle delivery streams").
//   - The stream's store calls get contexts of their own (storeContext),
//     not children of the request's: every child context leaves a map of
//     children allocated in its parent for the parent's life, here the
//     stream's.
//   - The authenticated device in the context carries only its id and
//     account, not its public keys (about 2 KB; the interceptor drops them
//     for streams).
func (r *relayService) Receive(ctx context.Context, req *connect.Request[parleyv1.ReceiveRequest], stream *connect.ServerStream[parleyv1.ReceiveResponse]) error {
	s := r.s
	s.streams.Add(1)
	defer s.streams.Done()
	d, err := s.openDelivery(ctx, caller(ctx), stream)
	if err != nil {
		return err
	}
	defer d.close()
	for notified := bus.Unknown; ; {
		if err := d.round(ctx, notified); err != nil {
			return err
		}
		select {
		case notified = <-d.wake:
		case <-d.displaced:
			return d.whyDisplaced(ctx)
		case <-ctx.Done():
			return s.streamEnd(ctx, ctx.Err())
		case <-s.streamsCtx.Done():
			return errShuttingDown
		}
	}
}

// streamStoreTimeout bounds each store call of a delivery stream, which
// runs under a context of its own (see Receive).
const streamStoreTimeout = 30 * time.Second

// delivery is one open delivery stream's state between rounds.
type delivery struct {
	s      *Server
	id     store.DeviceID
	dev    *store.Device // id and account only
	stream *connect.ServerStream[parleyv1.ReceiveResponse]

	wake                 <-chan uint64 // carries the largest Seq notified
	displaced            <-chan struct{}
	unsubscribe, release func()
	handoff              handoff // envelopes handed over by sends on this node
	unregisterHandoff    func()

	cursor          uint64 // last Seq sent
	drained         bool   // the Drained marker was sent
	lastPrekeyCheck time.Time
}

// storeContext returns a context for one store call of a stream: the
// request's values, not its cancellation (see Receive), and a bound.
func storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), streamStoreTimeout)
}

func (s *Server) openDelivery(ctx context.Context, dev *store.Device, stream *connect.ServerStream[parleyv1.ReceiveResponse]) (*delivery, error) {
	d := &delivery{s: s, id: dev.ID, dev: dev, stream: stream}
	// Subscribe before the first fetch, so that a message queued between
	// the fetch and the wait still wakes us.
	d.wake, d.unsubscribe = s.bus.Subscribe(dev.ID)
	sctx, cancel := storeContext(ctx)
	defer cancel()
	displaced, release, err := s.bus.Claim(sctx, dev.ID)
	if err != nil {
		d.unsubscribe()
		return nil, err
	}
	d.displaced, d.release = displaced, release
	d.unregisterHandoff = s.handoffs.register(dev.ID, &d.handoff)
	s.metrics.streams.Inc()
	_ = s.store.TouchDevice(sctx, dev.ID, s.now())
	return d, nil
}

func (d *delivery) close() {
	d.s.metrics.streams.Dec()
	d.release()
	d.unsubscribe()
	d.unregisterHandoff()
}

// round sends everything queued after the cursor — handed off by sends
// on this node if that covers notified, the largest Seq notified since the
// last round, else read from the store — then (once) the Drained marker
// and (at most every prekeyCheckInterval) a PrekeysLow warning.
func (d *delivery) round(ctx context.Context, notified uint64) error {
	s := d.s
	covered, err := d.pushHandedOff(notified)
	if err != nil {
		return s.streamEnd(ctx, err)
	}
	now := s.now()
	prekeysDue := now.Sub(d.lastPrekeyCheck) >= prekeyCheckInterval
	if covered && !prekeysDue {
		// The common round under load (covered implies drained): no store
		// call, so no context and timer for one.
		return nil
	}
	sctx, cancel := storeContext(ctx)
	defer cancel()
	for !covered {
		envs, err := s.store.Fetch(sctx, d.id, d.cursor, fetchPage)
		if errors.Is(err, store.ErrNotFound) && s.streamsCtx.Err() == nil {
			return s.goneReason(sctx, d.dev)
		} else if err != nil {
			return s.streamEnd(ctx, err)
		}
		for i := range envs {
			e := &envs[i]
			if err := d.send(e); err != nil {
				return s.streamEnd(ctx, err)
			}
			d.cursor = e.Seq
		}
		s.metrics.delivered.Add(float64(len(envs)))
		if len(envs) < fetchPage {
			break
		}
	}
	if !d.drained {
		d.drained = true
		if err := d.stream.Send(&parleyv1.ReceiveResponse{Event: &parleyv1.ReceiveResponse_Drained{Drained: &parleyv1.Drained{}}}); err != nil {
			return s.streamEnd(ctx, err)
		}
	}
	if prekeysDue {
		d.lastPrekeyCheck = now
		if err := s.sendPrekeysLow(sctx, d.id, d.stream); err != nil {
			return s.streamEnd(ctx, err)
		}
	}
	return nil
}

// pushHandedOff pushes the envelopes sends on this node handed to the
// stream, as long as each is the next of the queue (its Prev is the
// cursor), and reports whether the cursor then reaches notified, so that
// the round need not read the queue (handoff.go). Before the Drained
// marker, and after a wake-up without a Seq, it pushes nothing: the round
// reads the queue.
func (d *delivery) pushHandedOff(notified uint64) (covered bool, err error) {
	envs, overflow := d.s.handoffs.take(&d.handoff)
	if !d.drained || notified == bus.Unknown || overflow {
		return false, nil
	}
	now := d.s.now()
	for i := range envs {
		e := &envs[i]
		if e.Seq <= d.cursor {
			continue // read from the queue already
		}
		if e.Prev != d.cursor {
			return false, nil // a gap: read the queue from the cursor
		}
		if !e.Expires.Before(now) { // as Fetch: expired means before now
			if err := d.send(e); err != nil {
				return false, err
			}
			d.s.metrics.delivered.Inc()
			d.s.metrics.handedOff.Inc()
		}
		d.cursor = e.Seq
	}
	return d.cursor >= notified, nil
}

// send pushes one envelope on the stream.
func (d *delivery) send(e *store.Envelope) error {
	return d.stream.Send(&parleyv1.ReceiveResponse{Event: &parleyv1.ReceiveResponse_Envelope{Envelope: &parleyv1.Envelope{
		Seq: e.Seq, MessageId: e.MessageID[:], Sender: e.SenderUsername, SenderDevice: e.SenderDevice[:],
		ServerTimeMs: e.Created.UnixMilli(), Body: e.Body,
	}}})
}

// whyDisplaced says why another stream claimed this device: its device
// was removed (or its account deleted), or a newer stream took over.
func (d *delivery) whyDisplaced(ctx context.Context) error {
	sctx, cancel := storeContext(ctx)
	defer cancel()
	if _, err := d.s.store.Device(sctx, d.id); errors.Is(err, store.ErrNotFound) {
		return d.s.goneReason(sctx, d.dev)
	}
	return errStreamDisplaced
}

func (s *Server) sendPrekeysLow(ctx context.Context, id store.DeviceID, stream *connect.ServerStream[parleyv1.ReceiveResponse]) error {
	ot, pq, err := s.store.PrekeyCounts(ctx, id)
	if err != nil {
		return err
	}
	if ot >= s.cfg.PrekeyLowWater && pq >= s.cfg.PrekeyLowWater {
		return nil
	}
	return stream.Send(&parleyv1.ReceiveResponse{Event: &parleyv1.ReceiveResponse_PrekeysLow{PrekeysLow: &parleyv1.PrekeysLow{
		OneTimePrekeys: uint32(ot), PqPrekeys: uint32(pq),
	}}})
}

// streamEnd reports why a stream ended: shutdown is Unavailable (reconnect
// shortly), anything else as it is.
func (s *Server) streamEnd(ctx context.Context, err error) error {
	if s.streamsCtx.Err() != nil {
		return errShuttingDown
	}
	if errors.Is(err, store.ErrNotFound) {
		// The device's rows are gone: its account removed it.
		return errDeviceRemoved
	}
	return err
}

// Ack deletes delivered envelopes. It is not durable by design: a lost ack
// only causes a redelivery, which clients de-duplicate by message id.
func (r *relayService) Ack(ctx context.Context, req *connect.Request[parleyv1.AckRequest]) (*connect.Response[parleyv1.AckResponse], error) {
	s, dev := r.s, caller(ctx)
	if n := len(req.Msg.Seqs); n > s.maxAckPerCall {
		return nil, badRequest("at most %d acks per call, got %d", s.maxAckPerCall, n)
	}
	if err := s.store.Ack(ctx, dev.ID, req.Msg.Seqs); err != nil {
		return nil, err
	}
	s.metrics.acked.Add(float64(len(req.Msg.Seqs)))
	return connect.NewResponse(&parleyv1.AckResponse{}), nil
}
