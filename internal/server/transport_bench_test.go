package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/ackbatch"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/proccpu"
)

// benchmarkRelayTransport is e2e without the relay: the same pairs, calls,
// message sizes and connections (TLS, HTTP/2, connect, an Authorization
// header, acks in batches), against a relay service that stores nothing,
// checks nothing and hands each Send's envelope straight to its receiver's
// stream; no encryption on either end. What e2e spends beyond it is the
// relay's own work: authentication, the device lists, the store, the
// Double Ratchet.
func benchmarkRelayTransport(b *testing.B, pairs int) {
	size := relayEnvelopeSize(b)
	relay := &echoRelay{streams: map[string]chan *parleyv1.Envelope{}}
	mux := http.NewServeMux()
	mux.Handle(parleyv1connect.NewRelayServiceHandler(relay, connect.WithCompression("gzip", nil, nil)))
	hs := httptest.NewUnstartedServer(mux)
	hs.EnableHTTP2 = true
	hs.StartTLS()
	defer hs.Close()

	client := func() parleyv1connect.RelayServiceClient {
		tr := hs.Client().Transport.(*http.Transport).Clone()
		b.Cleanup(tr.CloseIdleConnections)
		return parleyv1connect.NewRelayServiceClient(&http.Client{Transport: tr}, hs.URL)
	}
	// A token of the size the server issues, so the headers are as large.
	token := make([]byte, tokenSize)
	primitives.Random(token)
	auth := "Bearer " + base64.RawURLEncoding.EncodeToString(token)
	withAuth := func(r connect.AnyRequest) {
		r.Header().Set("Authorization", auth)
	}

	type pair struct {
		name     string
		from, to parleyv1connect.RelayServiceClient
		stream   *connect.ServerStreamForClient[parleyv1.ReceiveResponse]
	}
	ps := make([]*pair, pairs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range ps {
		p := &pair{name: fmt.Sprint("receiver", i), from: client(), to: client()}
		relay.open(p.name)
		r := connect.NewRequest(&parleyv1.ReceiveRequest{})
		r.Header().Set("Receiver", p.name)
		withAuth(r)
		var err error
		if p.stream, err = p.to.Receive(ctx, r); err != nil {
			b.Fatal(err)
		}
		ps[i] = p
	}

	var delivered atomic.Int64
	var failed atomic.Pointer[error]
	fail := func(err error) { failed.CompareAndSwap(nil, &err) }
	var recvWG sync.WaitGroup
	for _, p := range ps {
		recvWG.Go(func() {
			acks := ackbatch.New(ackbatch.DefaultMax, ackbatch.DefaultDelay, func(seqs []uint64) {
				r := connect.NewRequest(&parleyv1.AckRequest{Seqs: seqs})
				withAuth(r)
				if _, err := p.to.Ack(context.Background(), r); err != nil {
					fail(err)
				}
			})
			defer acks.Close()
			for p.stream.Receive() {
				if e := p.stream.Msg().GetEnvelope(); e != nil {
					delivered.Add(1)
					acks.Add(e.Seq)
				}
			}
		})
	}
	work := make(chan struct{})
	var sendWG sync.WaitGroup
	for _, p := range ps {
		sendWG.Go(func() {
			device := make([]byte, 32)
			for range work {
				id, body := make([]byte, 16), make([]byte, size)
				primitives.Random(id)
				r := connect.NewRequest(&parleyv1.SendRequest{
					MessageId: id, Recipient: p.name,
					Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: device, Body: body}},
				})
				withAuth(r)
				if _, err := p.from.Send(context.Background(), r); err != nil {
					fail(err)
				}
			}
		})
	}

	dispatched := int64(0)
	cpu := proccpu.Used()
	start := time.Now()
	for b.Loop() {
		work <- struct{}{}
		dispatched++
	}
	close(work)
	sendWG.Wait()
	awaitDelivery(b, &delivered, dispatched, &failed)
	elapsed := time.Since(start)
	cpu = proccpu.Used() - cpu
	cancel()
	recvWG.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	rate := float64(dispatched) / elapsed.Seconds()
	b.ReportMetric(rate, "envelopes/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(dispatched), "cpu-µs/envelope")
	if floor := relayResults.median("floor"); floor > 0 {
		b.ReportMetric(rate/floor, "transport/floor")
	}
}

// echoRelay is the relay service of benchmarkRelayTransport: a Send's
// first envelope goes to the stream of the receiver it names. It
// implements every method of the service.
type echoRelay struct {
	mu      sync.Mutex
	streams map[string]chan *parleyv1.Envelope
	seq     atomic.Uint64
}

var _ parleyv1connect.RelayServiceHandler = (*echoRelay)(nil)

func (r *echoRelay) open(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// One message in flight per sender: a small buffer never fills.
	r.streams[name] = make(chan *parleyv1.Envelope, 16)
}

func (r *echoRelay) stream(name string) chan *parleyv1.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.streams[name]
}

func (r *echoRelay) Send(ctx context.Context, req *connect.Request[parleyv1.SendRequest]) (*connect.Response[parleyv1.SendResponse], error) {
	ch := r.stream(req.Msg.Recipient)
	if ch == nil || len(req.Msg.Envelopes) != 1 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("unknown receiver"))
	}
	e := req.Msg.Envelopes[0]
	ch <- &parleyv1.Envelope{Seq: r.seq.Add(1), Sender: "sender" + req.Msg.Recipient[len("receiver"):], SenderDevice: e.DeviceId, ServerTimeMs: time.Now().UnixMilli(), Body: e.Body, MessageId: req.Msg.MessageId}
	return connect.NewResponse(&parleyv1.SendResponse{}), nil
}

func (r *echoRelay) Receive(ctx context.Context, req *connect.Request[parleyv1.ReceiveRequest], st *connect.ServerStream[parleyv1.ReceiveResponse]) error {
	ch := r.stream(req.Header().Get("Receiver"))
	if ch == nil {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("unknown receiver"))
	}
	// As the relay does: its queue is empty, and the client's Receive
	// returns once this first message has brought the response headers.
	if err := st.Send(&parleyv1.ReceiveResponse{Event: &parleyv1.ReceiveResponse_Drained{Drained: &parleyv1.Drained{}}}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-ch:
			if err := st.Send(&parleyv1.ReceiveResponse{Event: &parleyv1.ReceiveResponse_Envelope{Envelope: e}}); err != nil {
				return err
			}
		}
	}
}

func (r *echoRelay) Ack(context.Context, *connect.Request[parleyv1.AckRequest]) (*connect.Response[parleyv1.AckResponse], error) {
	return connect.NewResponse(&parleyv1.AckResponse{}), nil
}
