package server

import (
	"context"
	"errors"
	"slices"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
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
	rdevs, err := s.store.Devices(ctx, recipient)
	if err != nil {
		return nil, err
	}
	if len(rdevs) == 0 {
		return nil, store.ErrNotFound
	}
	want := map[store.DeviceID]bool{}
	for _, d := range rdevs {
		want[d.ID] = true
	}
	if recipient != dev.Username {
		own, err := s.store.Devices(ctx, dev.Username)
		if err != nil {
			return nil, err
		}
		for _, d := range own {
			want[d.ID] = true
		}
	}
	delete(want, dev.ID)

	now := s.now()
	send := store.Send{MaxQueue: s.cfg.MaxQueue}
	got := map[store.DeviceID]bool{}
	var mm mismatch
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
		if !want[id] {
			mm.extra = append(mm.extra, id)
			continue
		}
		send.Envelopes = append(send.Envelopes, store.Envelope{
			Device: id, MessageID: store.MessageID(m.MessageId),
			SenderUsername: dev.Username, SenderDevice: dev.ID,
			Body: e.Body, Created: now, Expires: now.Add(s.cfg.MessageTTL),
		})
	}
	for id := range want {
		if !got[id] {
			mm.missing = append(mm.missing, id)
		}
	}
	if len(mm.missing) > 0 || len(mm.extra) > 0 {
		s.classifyStale(ctx, &mm, recipient, dev.Username)
		sortIDs(mm.missing)
		sortIDs(mm.extra)
		sortIDs(mm.stale)
		return nil, &mm
	}
	if len(send.Envelopes) > 0 {
		if err := s.store.Enqueue(ctx, send); err != nil {
			return nil, err
		}
		s.metrics.enqueued.Add(float64(len(send.Envelopes)))
		for _, e := range send.Envelopes {
			// A lost notification costs only latency: the queue is the truth.
			_ = s.bus.Notify(ctx, e.Device)
		}
	}
	return connect.NewResponse(&parleyv1.SendResponse{ServerTimeMs: now.UnixMilli()}), nil
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
func (r *relayService) Receive(ctx context.Context, req *connect.Request[parleyv1.ReceiveRequest], stream *connect.ServerStream[parleyv1.ReceiveResponse]) error {
	s, dev := r.s, caller(ctx)
	s.streams.Add(1)
	defer s.streams.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.streamsCtx, cancel)
	defer stop()

	// Subscribe before the first fetch, so that a message queued between
	// the fetch and the wait still wakes us.
	wake, unsubscribe := s.bus.Subscribe(dev.ID)
	defer unsubscribe()
	displaced, release, err := s.bus.Claim(ctx, dev.ID)
	if err != nil {
		return err
	}
	defer release()
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()
	_ = s.store.TouchDevice(ctx, dev.ID, s.now())

	var cursor uint64
	drained := false
	var lastPrekeyCheck time.Time
	for {
		envs, err := s.store.Fetch(ctx, dev.ID, cursor, fetchPage)
		if errors.Is(err, store.ErrNotFound) && s.streamsCtx.Err() == nil {
			return s.goneReason(ctx, dev)
		} else if err != nil {
			return s.streamEnd(ctx, err)
		}
		for i := range envs {
			e := &envs[i]
			if err := stream.Send(&parleyv1.ReceiveResponse{Event: &parleyv1.ReceiveResponse_Envelope{Envelope: &parleyv1.Envelope{
				Seq: e.Seq, MessageId: e.MessageID[:], Sender: e.SenderUsername, SenderDevice: e.SenderDevice[:],
				ServerTimeMs: e.Created.UnixMilli(), Body: e.Body,
			}}}); err != nil {
				return s.streamEnd(ctx, err)
			}
			cursor = e.Seq
		}
		s.metrics.delivered.Add(float64(len(envs)))
		if len(envs) == fetchPage {
			continue
		}
		if !drained {
			drained = true
			if err := stream.Send(&parleyv1.ReceiveResponse{Event: &parleyv1.ReceiveResponse_Drained{Drained: &parleyv1.Drained{}}}); err != nil {
				return s.streamEnd(ctx, err)
			}
		}
		if now := s.now(); now.Sub(lastPrekeyCheck) >= prekeyCheckInterval {
			lastPrekeyCheck = now
			if err := s.sendPrekeysLow(ctx, dev.ID, stream); err != nil {
				return s.streamEnd(ctx, err)
			}
		}
		select {
		case <-wake:
		case <-displaced:
			if _, err := s.store.Device(ctx, dev.ID); errors.Is(err, store.ErrNotFound) {
				return s.goneReason(ctx, dev)
			}
			return errStreamDisplaced
		case <-ctx.Done():
			return s.streamEnd(ctx, ctx.Err())
		}
	}
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
