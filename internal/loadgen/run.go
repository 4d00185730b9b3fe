package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/ackbatch"
	"github.com/parleyim/parley/internal/primitives"
)

// A run, in order:
//
//  1. Setup, if not done: register and log in every device.
//  2. Every device opens its delivery stream; the run waits until each has
//     reported its queue drained (at most streamsReadyTimeout).
//  3. The send phase, Config.Duration long (or until StopSending): devices send, paced to
//     Config.Rate or as fast as answered; streams receive, de-duplicate by
//     message id, and acknowledge in batches.
//  4. The drain: wait until every (message, recipient device) whose send
//     was acknowledged has been received, at most Config.DrainTimeout.
//  5. Streams close, flushing their last acks.
//  6. The sweep: every device opens a fresh stream, reads its queue to the
//     end and acknowledges it, so that anything still queued — a
//     redelivery after a lost ack, a message the drain gave up on — is
//     counted, and the server's queues are left empty.
//  7. The report: a message acknowledged to its sender and never received
//     by one of its recipient devices counts in Report.Lost.
const (
	streamsReadyTimeout = time.Minute
	sweepAttemptsPerURL = 3
)

// Run runs the load once and reports. The error is for a run that could
// not be carried out (registration failed, ctx ended); failures of
// individual calls are counted in the report.
func (e *Engine) Run(ctx context.Context) (*Report, error) {
	if err := e.Setup(ctx); err != nil {
		return nil, err
	}
	devs := e.deviceList()
	mem := newMemoryLog(e.cfg.URLs)
	mem.sample(ctx, e.scraper, &e.errs, true)

	// 2. Streams.
	recvCtx, stopRecv := context.WithCancel(ctx)
	defer stopRecv()
	var (
		recvWG    sync.WaitGroup
		remaining atomic.Int64 // streams yet to report their queue drained
		readyCh   = make(chan struct{})
	)
	remaining.Store(int64(len(devs)))
	for _, d := range devs {
		drained := sync.OnceFunc(func() {
			if remaining.Add(-1) == 0 {
				close(readyCh)
			}
		})
		recvWG.Go(func() { e.receiveLoop(recvCtx, d, drained) })
	}
	select {
	case <-readyCh:
	case <-time.After(streamsReadyTimeout):
		e.cfg.Logger.Warn("not every delivery stream opened; sending anyway")
	case <-ctx.Done():
		stopRecv()
		recvWG.Wait()
		return nil, ctx.Err()
	}

	// 3. Send phase, with the progress and memory sampler beside it.
	start := time.Now()
	sampleCtx, stopSampler := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	phase := &phaseName{name: "sending"}
	go func() {
		defer close(samplerDone)
		e.sampler(sampleCtx, start, mem, phase)
	}()
	sendCtx, stopSend := context.WithTimeout(ctx, e.cfg.Duration)
	go func() {
		select {
		case <-e.stopSending:
			stopSend()
		case <-sendCtx.Done():
		}
	}()
	e.sendPhase(sendCtx, ctx, devs)
	stopSend()
	sendPhase := time.Since(start)

	// 4. Drain.
	phase.set("draining")
	deadline := time.Now().Add(e.cfg.DrainTimeout)
	for e.outstanding.Load() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	e.drainTimedOut = e.outstanding.Load() > 0

	// 5. Close the streams.
	stopRecv()
	recvWG.Wait()
	stopSampler()
	<-samplerDone

	// 6. Sweep.
	phase.set("sweeping")
	e.sweep(ctx, devs)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	mem.sample(ctx, e.scraper, &e.errs, false)
	return e.report(sendPhase, elapsed, mem), nil
}

type phaseName struct {
	mu   sync.Mutex
	name string
}

func (p *phaseName) set(n string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.name = n
}

func (p *phaseName) get() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.name
}

// sampler samples the servers' memory and reports progress once a
// progressInterval until ctx ends.
func (e *Engine) sampler(ctx context.Context, start time.Time, mem *memoryLog, phase *phaseName) {
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		mem.sample(ctx, e.scraper, &e.errs, false)
		if e.cfg.Progress != nil {
			e.cfg.Progress(e.progress(time.Since(start), phase.get()))
		}
	}
}

func (e *Engine) progress(elapsed time.Duration, phase string) Progress {
	return Progress{
		Elapsed: elapsed, Phase: phase,
		Sent: e.sent.Load(), Failed: e.failed.Load(),
		Delivered: e.delivered.Load(), Duplicates: e.duplicates.Load(), Acked: e.acked.Load(),
		Outstanding: e.outstanding.Load(), Errors: e.errs.total(), Streams: e.streams.Load(),
		P50: e.lat.quantile(0.50), P99: e.lat.quantile(0.99),
	}
}

// sendPhase sends until phaseCtx ends; sends in flight then finish (with
// their retries) under runCtx.
func (e *Engine) sendPhase(phaseCtx, runCtx context.Context, devs []*device) {
	var wg sync.WaitGroup
	if e.cfg.Rate == 0 {
		for _, d := range devs {
			wg.Go(func() {
				for phaseCtx.Err() == nil {
					e.sendOne(runCtx, d)
				}
			})
		}
		wg.Wait()
		return
	}
	// Paced: a dispatcher hands out one token per send at Rate, each
	// device takes tokens one at a time. When every device is busy the
	// dispatcher falls behind and the measured rate shows it.
	work := make(chan struct{}, len(devs))
	for _, d := range devs {
		wg.Go(func() {
			for range work {
				e.sendOne(runCtx, d)
			}
		})
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	var dispatched int64
dispatch:
	for {
		due := int64(e.cfg.Rate * time.Since(start).Seconds())
		for dispatched < due {
			select {
			case work <- struct{}{}:
				dispatched++
			case <-phaseCtx.Done():
				break dispatch
			}
		}
		select {
		case <-tick.C:
		case <-phaseCtx.Done():
			break dispatch
		}
	}
	tick.Stop()
	close(work)
	wg.Wait()
}

// sendOne sends one message from d to a random other account: one
// envelope for each of its devices and each other device of d's account.
func (e *Engine) sendOne(ctx context.Context, d *device) {
	ui := rand.IntN(len(e.users) - 1)
	if e.users[ui] == d.user {
		ui = len(e.users) - 1
	}
	to := e.users[ui]
	targets := make([]*device, 0, len(to.devices)+len(d.user.devices)-1)
	targets = append(targets, to.devices...)
	for _, o := range d.user.devices {
		if o != d {
			targets = append(targets, o)
		}
	}
	p := Payload{Sent: e.now()}
	primitives.Random(p.MessageID[:])
	body, err := p.Envelope(e.cfg.EnvelopeSize)
	if err != nil {
		panic("loadgen: internal error: " + err.Error()) // the size was checked by New
	}
	req := &parleyv1.SendRequest{MessageId: p.MessageID[:], Recipient: to.name}
	for _, t := range targets {
		req.Envelopes = append(req.Envelopes, &parleyv1.OutgoingEnvelope{DeviceId: t.id[:], Body: body})
	}
	err = retryAuthed(ctx, d, "send", &e.errs, func(ctx context.Context, c nodeClients, tok string) error {
		_, err := c.relay.Send(ctx, authed(tok, req))
		return err
	})
	if err != nil {
		e.failed.Add(1)
		return
	}
	e.sent.Add(1)
	e.sentEnvelopes.Add(int64(len(targets)))
	for _, t := range targets {
		t.mu.Lock()
		st := t.inbox[p.MessageID]
		t.inbox[p.MessageID] = st | stateSendAcked
		t.mu.Unlock()
		if st&stateDeliveries == 0 {
			e.outstanding.Add(1)
		}
	}
}

// deliver records one envelope received by d and reports whether it was
// the first delivery of its message (false: a duplicate, or not a load
// message at all).
func (e *Engine) deliver(d *device, env *parleyv1.Envelope) bool {
	p, err := ParsePayload(env.Body)
	if err == nil && string(env.MessageId) != string(p.MessageID[:]) {
		err = ErrBadPayload
	}
	if err != nil {
		e.corrupt.Add(1)
		e.errs.add("receive", err)
		return false
	}
	d.mu.Lock()
	st := d.inbox[p.MessageID]
	n := st & stateDeliveries
	d.inbox[p.MessageID] = st&stateSendAcked | min(n+1, stateDeliveries)
	d.mu.Unlock()
	if n > 0 {
		e.duplicates.Add(1)
		return false
	}
	e.delivered.Add(1)
	e.lat.record(e.now().Sub(p.Sent))
	if st&stateSendAcked != 0 {
		e.outstanding.Add(-1)
	}
	return true
}

// receiveLoop keeps d's delivery stream open until ctx ends, moving to
// the next node when one fails. onDrained is called once the first
// stream has delivered the queue as it was.
func (e *Engine) receiveLoop(ctx context.Context, d *device, onDrained func()) {
	backoff := retryFirst
	for ctx.Err() == nil {
		node := d.node.Load()
		reached, err := e.stream(ctx, d, node, onDrained)
		if ctx.Err() != nil {
			return
		}
		e.errs.add("receive", err)
		e.cfg.Logger.Debug("delivery stream ended", "device", d.index, "node", node, "err", err)
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			if _, lerr := d.login(ctx, d.currentToken(), &e.errs); lerr != nil {
				e.cfg.Logger.Debug("log in", "device", d.index, "err", lerr)
			}
		} else {
			d.failover(node)
		}
		if reached {
			backoff = retryFirst
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryMax)
	}
}

// stream runs one delivery stream of d on node until it ends, and says
// whether it got as far as its Drained marker. Acks go out in batches
// from a goroutine of their own, as the SDK's do (internal/ackbatch).
func (e *Engine) stream(ctx context.Context, d *device, node int32, onDrained func()) (reached bool, err error) {
	rs, err := d.conn.nodes[node].relay.Receive(ctx, authed(d.currentToken(), &parleyv1.ReceiveRequest{}))
	if err != nil {
		return false, err
	}
	e.streams.Add(1)
	defer e.streams.Add(-1)

	defer rs.Close()
	acks := ackbatch.New(e.cfg.AckBatch, e.cfg.AckDelay, func(seqs []uint64) { e.ack(d, seqs) })
	defer acks.Close()
	for rs.Receive() {
		switch ev := rs.Msg().Event.(type) {
		case *parleyv1.ReceiveResponse_Envelope:
			e.deliver(d, ev.Envelope)
			acks.Add(ev.Envelope.Seq)
		case *parleyv1.ReceiveResponse_Drained:
			reached = true
			onDrained()
			acks.Flush()
		}
	}
	if err := rs.Err(); err != nil {
		return reached, err
	}
	return reached, errors.New("loadgen: the server closed the delivery stream")
}

// ack acknowledges seqs on d's current node, once: a lost ack only
// causes a redelivery, which de-duplication absorbs.
func (e *Engine) ack(d *device, seqs []uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	tok := d.currentToken()
	_, err := d.clients().relay.Ack(ctx, authed(tok, &parleyv1.AckRequest{Seqs: seqs}))
	if err != nil {
		e.errs.add("ack", err)
		return
	}
	e.acked.Add(int64(len(seqs)))
}

// sweep reads every device's queue to the end and acknowledges it.
func (e *Engine) sweep(ctx context.Context, devs []*device) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, e.cfg.SetupConcurrency)
	for _, d := range devs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for range sweepAttemptsPerURL * len(e.cfg.URLs) {
				if ctx.Err() != nil {
					break
				}
				node := d.node.Load()
				err := e.sweepOne(ctx, d, node)
				if err == nil {
					return
				}
				e.errs.add("sweep", err)
				if connect.CodeOf(err) == connect.CodeUnauthenticated {
					_, _ = d.login(ctx, d.currentToken(), &e.errs)
				} else {
					d.failover(node)
				}
				time.Sleep(retryFirst)
			}
			e.sweepFailed.Add(1)
		})
	}
	wg.Wait()
}

func (e *Engine) sweepOne(ctx context.Context, d *device, node int32) error {
	ctx, cancel := context.WithTimeout(ctx, streamsReadyTimeout)
	defer cancel()
	c := d.conn.nodes[node]
	rs, err := c.relay.Receive(ctx, authed(d.currentToken(), &parleyv1.ReceiveRequest{}))
	if err != nil {
		return err
	}
	defer rs.Close()
	var seqs []uint64
	ack := func() error {
		if len(seqs) == 0 {
			return nil
		}
		actx, acancel := context.WithTimeout(ctx, callTimeout)
		defer acancel()
		if _, err := c.relay.Ack(actx, authed(d.currentToken(), &parleyv1.AckRequest{Seqs: seqs})); err != nil {
			return err
		}
		e.acked.Add(int64(len(seqs)))
		seqs = nil
		return nil
	}
	for rs.Receive() {
		switch ev := rs.Msg().Event.(type) {
		case *parleyv1.ReceiveResponse_Envelope:
			e.deliver(d, ev.Envelope)
			seqs = append(seqs, ev.Envelope.Seq)
			if len(seqs) >= e.cfg.AckBatch {
				if err := ack(); err != nil {
					return err
				}
			}
		case *parleyv1.ReceiveResponse_Drained:
			return ack()
		}
	}
	if err := rs.Err(); err != nil {
		return err
	}
	return errors.New("loadgen: the server closed the delivery stream")
}
