package server

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/ackbatch"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/proccpu"
	"github.com/parleyim/parley/internal/session"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
	"github.com/parleyim/parley/internal/wire"
)

// BenchmarkRelay measures the relay end to end beside a raw SQLite floor
// measured in the same run (docs/performance.md, "Relay"):
//
//	go test -run '^$' -bench BenchmarkRelay -benchmem -benchtime 2s -count 6 ./internal/server
//
// floor: rows of the size of an e2e envelope inserted into a fresh
// database with the server's schema, relayFloorBatch rows per transaction,
// with plain SQL on one connection: no server, no store code, no network.
//
// e2e/pairs=N: N sender and N receiver devices, each with its own TLS
// connection (HTTP/2 over loopback) to a real server on a real SQLite
// file. Every sender sends 1:1 messages to its receiver as fast as the
// server answers, each a real Double Ratchet ciphertext; every receiver
// holds a Receive stream, decrypts, and acknowledges in batches as the
// SDK does (internal/ackbatch: 64 envelopes, or 100 ms after the oldest). The
// metrics: envelopes/s delivered (decrypted by the receiver), the p50 and
// p99 latency from the start of a send (before encryption) to the end of
// its decryption, the CPU time of the whole process per envelope, the
// share of envelopes a send handed to the receiver's stream without a
// store read (handoff.go), and e2e/floor (against the median floor of the
// run).
//
// transport/pairs=N: e2e's calls over the same connections against a
// relay that does nothing (benchmarkRelayTransport): what HTTP/2, TLS and
// connect cost on their own, and so how much of the floor is left for the
// relay's own work.
//
// halfload/pairs=N: the same as e2e at a fixed rate, half of what
// e2e/pairs=N reached earlier in the same run (the median of its runs).
func BenchmarkRelay(b *testing.B) {
	b.Run("floor", benchmarkRelayFloor)
	for _, pairs := range relayPairs {
		b.Run(fmt.Sprintf("e2e/pairs=%d", pairs), func(b *testing.B) {
			r := runRelay(b, pairs, 0, openSQLite)
			if floor := relayResults.median("floor"); floor > 0 {
				b.ReportMetric(r.rate/floor, "e2e/floor")
			}
			relayResults.record(fmt.Sprint("e2e", pairs), r.rate)
		})
	}
	for _, pairs := range relayPairs {
		b.Run(fmt.Sprintf("transport/pairs=%d", pairs), func(b *testing.B) { benchmarkRelayTransport(b, pairs) })
	}
	for _, pairs := range relayPairs {
		b.Run(fmt.Sprintf("halfload/pairs=%d", pairs), func(b *testing.B) {
			full := relayResults.median(fmt.Sprint("e2e", pairs))
			if full == 0 {
				b.Skipf("run e2e/pairs=%d first: the load is half of its rate", pairs)
			}
			runRelay(b, pairs, full/2, openSQLite)
		})
	}
}

// relayResults holds the rates measured earlier in the same run, for the
// ratio and for the half load. With -count the sub-benchmarks run one
// after the other (floor every time, then e2e every time...), so each
// uses the median of the runs before it: one slow run of the floor, on a
// shared machine, does not skew the ratio.
var relayResults = rateLog{rates: map[string][]float64{}}

type rateLog struct {
	mu    sync.Mutex
	rates map[string][]float64
}

func (l *rateLog) record(key string, rate float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rates[key] = append(l.rates[key], rate)
}

// median returns the median of key's rates so far, or 0 if there are none.
func (l *rateLog) median(key string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	rs := slices.Sorted(slices.Values(l.rates[key]))
	switch n := len(rs); {
	case n == 0:
		return 0
	case n%2 == 1:
		return rs[n/2]
	default:
		return (rs[n/2-1] + rs[n/2]) / 2
	}
}

// Benchmark shape.
const (
	// relayPlaintextSize is the size of a message before padding: a short
	// chat message, padded to wire.MinPaddedSize like every short one.
	relayPlaintextSize = 64
	// relayFloorBatch is how many rows one floor transaction inserts.
	relayFloorBatch = 64
	// relayFloorDevices is how many queues the floor's rows spread over.
	relayFloorDevices = 64
	// relayStall bounds how long the end of a run waits for envelopes
	// still in flight: a stall is a bug, not a slow machine.
	relayStall = time.Minute
)

// relayPairs are the sender/receiver pair counts of e2e and halfload.
var relayPairs = []int{8, 64}

// relayEnvelopeSize is the size of the envelopes e2e sends once sessions
// are confirmed, so the floor inserts rows of the same size.
func relayEnvelopeSize(tb testing.TB) int {
	tb.Helper()
	a, bob := identity.GenerateDeviceKeys(), identity.GenerateDeviceKeys()
	set, up, err := prekey.NewSet(bob.Signing, 1)
	if err != nil {
		tb.Fatal(err)
	}
	bundle := &prekey.Bundle{Signed: *up.Signed, PQ: *up.LastResort}
	now := time.Now()
	ra, rb := session.New(), session.New()
	if err := ra.Initiate(a, bob.Public(), bundle, now); err != nil {
		tb.Fatal(err)
	}
	env, err := ra.Encrypt(make([]byte, relayPlaintextSize), now)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := rb.Decrypt(env, bob, set, a.Public(), now); err != nil {
		tb.Fatal(err)
	}
	reply, err := rb.Encrypt(make([]byte, relayPlaintextSize), now)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := ra.Decrypt(reply, a, nil, bob.Public(), now); err != nil {
		tb.Fatal(err)
	}
	env, err = ra.Encrypt(make([]byte, relayPlaintextSize), now)
	if err != nil {
		tb.Fatal(err)
	}
	if env.Type != wire.TypeRatchet {
		tb.Fatalf("a confirmed session sent a %v envelope", env.Type)
	}
	return len(env.Marshal())
}

func benchmarkRelayFloor(b *testing.B) {
	path := filepath.Join(b.TempDir(), "floor.db")
	// The store creates the schema (migrations, triggers, indexes) and
	// the devices the rows belong to; then it is closed and the rows go in
	// with plain SQL.
	st, err := sqlite.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	devs := make([]store.DeviceID, relayFloorDevices)
	for i := range devs {
		primitives.Random(devs[i][:])
		name := fmt.Sprint("floor", i)
		if err := st.CreateAccount(ctx, store.NewAccount{
			Account: store.Account{Username: name, AccountKey: []byte("k")},
			List:    store.DeviceList{Username: name, Version: 1, Signed: []byte("l")},
			Devices: []store.Device{{ID: devs[i], Username: name, Public: []byte("p")}},
		}); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	// The writer connection's pragmas, as internal/store/sqlite sets them
	// (configureWriter): WAL (persistent, set by Open), synchronous=FULL,
	// foreign keys, a 16 MiB cache.
	db, err := sql.Open("sqlite", "file:"+path+
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=cache_size(-16384)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ins, err := conn.PrepareContext(ctx, `INSERT INTO envelopes
		(device, message_id, sender_username, sender_device, body, created, expires)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device, message_id) DO NOTHING`)
	if err != nil {
		b.Fatal(err)
	}
	defer ins.Close()
	body := make([]byte, relayEnvelopeSize(b))
	primitives.Random(body)
	sender := store.DeviceID{1}
	var msg store.MessageID

	exec := func(q string) {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	rows := 0
	start := time.Now()
	for b.Loop() {
		if rows%relayFloorBatch == 0 {
			exec("BEGIN IMMEDIATE")
		}
		now := time.Now()
		primitives.Random(msg[:])
		if _, err := ins.ExecContext(ctx, devs[rows%len(devs)][:], msg[:], "sender", sender[:], body,
			now.UnixMicro(), now.Add(24*time.Hour).UnixMicro()); err != nil {
			b.Fatal(err)
		}
		rows++
		if rows%relayFloorBatch == 0 {
			exec("COMMIT")
		}
	}
	if rows%relayFloorBatch != 0 {
		exec("COMMIT")
	}
	r := float64(rows) / time.Since(start).Seconds()
	b.ReportMetric(r, "envelopes/s")
	relayResults.record("floor", r)
}

// relayResult is what one run of runRelay measured.
type relayResult struct {
	rate     float64 // envelopes/s delivered
	p50, p99 time.Duration
}

// runRelay runs pairs sender→receiver pairs over a real server for the
// benchmark's iterations, one iteration one message. With load 0 senders
// send as fast as the server answers; otherwise a pacer hands out sends at
// load messages/s in total.
func runRelay(b *testing.B, pairs int, load float64, open openStore) relayResult {
	s := newBenchServer(b, benchConfig(), open)
	ps := s.pairs(pairs)

	// t0 is the run's clock: a message carries the time its send started,
	// as a monotonic offset from t0, so that its receiver can measure its
	// latency without shared state.
	t0 := time.Now()
	var delivered atomic.Int64
	var failed atomic.Pointer[error]
	fail := func(err error) { failed.CompareAndSwap(nil, &err) }

	var recvWG sync.WaitGroup
	lat := make([][]time.Duration, pairs)
	for i, p := range ps {
		recvWG.Go(func() { lat[i] = p.receive(t0, &delivered, fail) })
	}
	work := make(chan struct{})
	var sendWG sync.WaitGroup
	for _, p := range ps {
		sendWG.Go(func() { p.send(work, t0, fail) })
	}
	// Stop the senders however the run ends (b.Fatal included).
	stopSenders := sync.OnceFunc(func() { close(work); sendWG.Wait() })
	b.Cleanup(stopSenders)
	b.Cleanup(func() {
		for _, p := range ps {
			p.stream.cancel()
		}
		recvWG.Wait()
	})

	var interval time.Duration
	if load > 0 {
		interval = time.Duration(float64(time.Second) / load)
	}
	dispatched := int64(0)
	cpu := proccpu.Used()
	start := time.Now()
	next := start
	for b.Loop() {
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
		}
		work <- struct{}{}
		dispatched++
	}
	stopSenders()
	awaitDelivery(b, &delivered, dispatched, &failed)
	elapsed := time.Since(start)
	cpu = proccpu.Used() - cpu

	// Stop the receivers; each flushes its last acks on the way out.
	for _, p := range ps {
		p.stream.cancel()
	}
	recvWG.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	// Every envelope was acknowledged: the queues are empty.
	for _, p := range ps {
		if n, err := s.st.QueueLength(context.Background(), p.to.did); err != nil || n != 0 {
			b.Fatalf("receiver %s: %d envelopes left in its queue (%v)", p.to.name, n, err)
		}
	}

	all := slices.Concat(lat...)
	slices.Sort(all)
	r := relayResult{rate: float64(dispatched) / elapsed.Seconds(), p50: quantile(all, 0.50), p99: quantile(all, 0.99)}
	b.ReportMetric(r.rate, "envelopes/s")
	b.ReportMetric(counterValue(b, s.srv.metrics.handedOff)/float64(dispatched), "handed-off/envelope")
	// CPU time of the whole process (server and clients) per envelope:
	// less noisy than the rate on a shared machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(dispatched), "cpu-µs/envelope")
	b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
	return r
}

// awaitDelivery waits until dispatched envelopes have been delivered or a
// client failed, and fails b if that takes longer than relayStall.
func awaitDelivery(b *testing.B, delivered *atomic.Int64, dispatched int64, failed *atomic.Pointer[error]) {
	b.Helper()
	for deadline := time.Now().Add(relayStall); delivered.Load() < dispatched && failed.Load() == nil; {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d envelopes delivered after %v", delivered.Load(), dispatched, relayStall)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// benchConfig is the server's default configuration with rate limits
// lifted: the benchmark measures the relay, not the limiter. The queue
// limit is lifted too, so that a slow receiver slows the run rather than
// failing it.
func benchConfig() Config {
	cfg := testConfig()
	cfg.DeviceRate, cfg.IPRate = rate.Inf, rate.Inf
	cfg.MaxQueue = 1 << 30
	return cfg
}

// relayPair is a sender device with a confirmed session to a receiver
// device, whose delivery stream is open.
type relayPair struct {
	s        *benchServer
	from, to *benchDevice
	// out is the sender's session with the receiver, in the sender's
	// goroutine; in the receiver's, with the sender.
	out, in *session.Record
	stream  *benchStream
}

// pairs registers n sender and n receiver devices, starts a session from
// each sender to its receiver through the server (claim, initiate, a first
// prekey message, delivered and acknowledged) and confirms it with a reply
// passed in memory, so that the measured messages are ratchet messages of
// an established conversation.
func (s *benchServer) pairs(n int) []*relayPair {
	s.tb.Helper()
	devs := make([]*benchDevice, 2*n)
	var wg sync.WaitGroup
	errs := make([]error, len(devs))
	for i := range devs {
		wg.Go(func() {
			role := "sender"
			if i%2 == 1 {
				role = "receiver"
			}
			devs[i], errs[i] = s.register(fmt.Sprintf("%s%d", role, i/2))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.tb.Fatal(err)
	}
	ps := make([]*relayPair, n)
	for i := range ps {
		ps[i] = &relayPair{s: s, from: devs[2*i], to: devs[2*i+1]}
	}
	for _, p := range ps {
		if err := p.start(); err != nil {
			s.tb.Fatalf("%s → %s: %v", p.from.name, p.to.name, err)
		}
	}
	return ps
}

func (p *relayPair) start() error {
	ctx := context.Background()
	now := time.Now()
	cl, err := p.from.dir.ClaimBundles(ctx, req(p.from.account, &parleyv1.ClaimBundlesRequest{Username: p.to.name}))
	if err != nil {
		return err
	}
	if len(cl.Msg.Bundles) != 1 {
		return fmt.Errorf("claimed %d bundles", len(cl.Msg.Bundles))
	}
	bundle, err := prekey.ParseBundle(cl.Msg.Bundles[0].Bundle)
	if err != nil {
		return err
	}
	p.out = session.New()
	if err := p.out.Initiate(p.from.dev, p.to.dev.Public(), bundle, now); err != nil {
		return err
	}
	if err := p.sendOne(ctx, make([]byte, relayPlaintextSize), now); err != nil {
		return err
	}
	if p.stream, err = p.s.receive(p.to); err != nil {
		return err
	}
	stall := time.AfterFunc(relayStall, p.stream.cancel)
	e := p.stream.next()
	if !stall.Stop() || e == nil {
		return errors.New("the first message did not arrive")
	}
	p.in = session.New()
	if _, err := p.decrypt(e, now); err != nil {
		return err
	}
	if _, err := p.to.relay.Ack(ctx, req(p.to.account, &parleyv1.AckRequest{Seqs: []uint64{e.Seq}})); err != nil {
		return err
	}
	// The reply that confirms the session, in memory: the relay is
	// measured one way.
	reply, err := p.in.Encrypt(make([]byte, relayPlaintextSize), now)
	if err != nil {
		return err
	}
	if _, err := p.out.Decrypt(reply, p.from.dev, p.from.prekeys, p.to.dev.Public(), now); err != nil {
		return err
	}
	if !p.out.Confirmed() {
		return errors.New("session not confirmed by the reply")
	}
	return nil
}

// sendOne encrypts plaintext on the sender's session and sends it.
func (p *relayPair) sendOne(ctx context.Context, plaintext []byte, now time.Time) error {
	env, err := p.out.Encrypt(plaintext, now)
	if err != nil {
		return err
	}
	id := make([]byte, 16)
	primitives.Random(id)
	to := p.to.did
	_, err = p.from.relay.Send(ctx, req(p.from.account, &parleyv1.SendRequest{
		MessageId: id, Recipient: p.to.name,
		Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: to[:], Body: env.Marshal()}},
	}))
	return err
}

// decrypt opens an envelope from the pair's sender on the receiver's
// session.
func (p *relayPair) decrypt(e *parleyv1.Envelope, now time.Time) ([]byte, error) {
	if from := p.from.did; e.Sender != p.from.name || string(e.SenderDevice) != string(from[:]) {
		return nil, fmt.Errorf("envelope from %s, want %s", e.Sender, p.from.name)
	}
	env, err := wire.UnmarshalEnvelope(e.Body)
	if err != nil {
		return nil, err
	}
	return p.in.Decrypt(env, p.to.dev, p.to.prekeys, p.from.dev.Public(), now)
}

// send is the sender's loop: one message per token from work.
func (p *relayPair) send(work <-chan struct{}, t0 time.Time, fail func(error)) {
	ctx := context.Background()
	pt := make([]byte, relayPlaintextSize)
	for range work {
		binary.BigEndian.PutUint64(pt, uint64(time.Since(t0)))
		if err := p.sendOne(ctx, pt, time.Now()); err != nil {
			fail(fmt.Errorf("%s: send: %w", p.from.name, err))
			// Keep taking tokens so that the dispatcher does not block;
			// the run fails at its end.
		}
	}
}

// receive is the receiver's loop: decrypt each envelope, acknowledge in
// batches as the SDK does (internal/ackbatch), until the stream ends. It
// returns the latencies it measured.
func (p *relayPair) receive(t0 time.Time, delivered *atomic.Int64, fail func(error)) []time.Duration {
	acks := ackbatch.New(ackbatch.DefaultMax, ackbatch.DefaultDelay, func(seqs []uint64) {
		// Not the stream's context: the last acks go out after it ends.
		if _, err := p.to.relay.Ack(context.Background(), req(p.to.account, &parleyv1.AckRequest{Seqs: seqs})); err != nil {
			fail(fmt.Errorf("%s: ack: %w", p.to.name, err))
		}
	})
	defer acks.Close()
	var lat []time.Duration
	for e := p.stream.next(); e != nil; e = p.stream.next() {
		pt, err := p.decrypt(e, time.Now())
		if err != nil {
			fail(fmt.Errorf("%s: decrypt: %w", p.to.name, err))
			continue
		}
		lat = append(lat, time.Since(t0)-time.Duration(binary.BigEndian.Uint64(pt)))
		delivered.Add(1)
		acks.Add(e.Seq)
	}
	return lat
}
