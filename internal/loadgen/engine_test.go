package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/parleyim/parley/internal/store"
)

func run(t *testing.T, cfg Config) (*Engine, *Report) {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := e.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return e, r
}

// queued returns how many envelopes the server still holds for the
// engine's devices.
func queued(t *testing.T, e *Engine, st store.Store) int {
	t.Helper()
	n := 0
	for _, d := range e.deviceList() {
		q, err := st.QueueLength(context.Background(), store.DeviceID(d.id))
		if err != nil {
			t.Fatal(err)
		}
		n += q
	}
	return n
}

// serverCounter reads one of the server's counters from /metrics.
func serverCounter(t *testing.T, url, name string) int64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, err := ParseMetrics(resp.Body, name)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := m[name]
	if !ok {
		t.Fatalf("no %s in /metrics", name)
	}
	return int64(v)
}

// TestEveryAcknowledgedMessageDeliveredOnce runs the engine against a real
// server: accounts with two devices each (so every send fans out to three
// devices), spread over four connections from four loopback source
// addresses. Every acknowledged message reaches every recipient device
// exactly once after de-duplication, and the report's counts agree with
// each other and with the server's.
func TestEveryAcknowledgedMessageDeliveredOnce(t *testing.T) {
	noLeaks(t)
	srv := startServer(t, unlimited(), nil)
	var progress atomic.Int64
	e, r := run(t, Config{
		URLs: []string{srv.url}, Users: 6, DevicesPerUser: 2, Duration: 1500 * time.Millisecond,
		Conns: 4, SourceAddrs: SourceAddrs(4), EnvelopeSize: 500,
		Progress: func(Progress) { progress.Add(1) },
	})
	t.Logf("sent %d (%d envelopes), delivered %d, acked %d, p50 %.1f ms, p99 %.1f ms",
		r.Sent, r.SentEnvelopes, r.Delivered, r.Acked, r.Latency.P50, r.Latency.P99)
	if r.Sent < 10 {
		t.Fatalf("only %d messages sent in 1.5 s", r.Sent)
	}
	if r.Devices != 12 || r.Users != 6 {
		t.Errorf("report says %d devices of %d users", r.Devices, r.Users)
	}
	if r.SentEnvelopes != 3*r.Sent {
		t.Errorf("%d envelopes for %d messages; each send goes to the recipient's two devices and the sender's other one", r.SentEnvelopes, r.Sent)
	}
	if r.Lost != 0 || r.Corrupt != 0 || r.FailedSends != 0 || r.Duplicates != 0 || r.Unacknowledged != 0 || r.DrainTimedOut || r.SweepFailed != 0 {
		t.Errorf("lost %d, corrupt %d, failed %d, duplicates %d, unacknowledged %d, drain timed out %v, sweep failed %d",
			r.Lost, r.Corrupt, r.FailedSends, r.Duplicates, r.Unacknowledged, r.DrainTimedOut, r.SweepFailed)
	}
	if r.Delivered != r.SentEnvelopes {
		t.Errorf("delivered %d envelopes, sent %d", r.Delivered, r.SentEnvelopes)
	}
	if r.Acked != r.Delivered+r.Duplicates {
		t.Errorf("acked %d, delivered %d + duplicates %d", r.Acked, r.Delivered, r.Duplicates)
	}
	if len(r.Errors) != 0 {
		t.Errorf("errors: %v", r.Errors)
	}
	if got := serverCounter(t, srv.url, "parleyd_envelopes_enqueued_total"); got != r.SentEnvelopes {
		t.Errorf("the server enqueued %d envelopes, the report says %d were sent", got, r.SentEnvelopes)
	}
	if got := serverCounter(t, srv.url, "parleyd_envelopes_acked_total"); got != r.Acked {
		t.Errorf("the server counted %d acks, the report %d", got, r.Acked)
	}
	if n := queued(t, e, srv.st); n != 0 {
		t.Errorf("%d envelopes left in the server's queues", n)
	}
	if l := r.Latency; !(l.P50 > 0 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latency quantiles out of order: %+v", l)
	}
	if n := srv.peers.count(); n != 4 {
		t.Errorf("the server saw %d client addresses, want 4", n)
	}
	if r.Connections < 4 {
		t.Errorf("%d connections for 4 transports", r.Connections)
	}
	if len(r.Servers) != 1 || r.Servers[0].Start == nil || r.Servers[0].End == nil || r.Servers[0].End.RSS <= 0 || r.Servers[0].Peak.HeapInuse <= 0 {
		t.Errorf("server memory: %+v", r.Servers)
	}
	if r.ServerCPUPerEnvelope <= 0 {
		t.Errorf("server CPU per envelope: %v (samples %+v, %+v)", r.ServerCPUPerEnvelope, r.Servers[0].Start, r.Servers[0].End)
	}
	if progress.Load() == 0 {
		t.Error("no progress reported")
	}
}

// noLeaks fails t if goroutines started during the test (by the engine,
// its connections or the server) are still running once it has cleaned up.
// Registered first, it runs last.
func noLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var n int
		for range 500 {
			if n = runtime.NumGoroutine(); n <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left running (%d before):\n%s", n, before, buf[:runtime.Stack(buf, true)])
	})
}

// lossyStore drops every tenth send while saying it was stored: a server
// that loses acknowledged messages.
type lossyStore struct {
	store.Store
	sends, dropped atomic.Int64
}

func (s *lossyStore) Enqueue(ctx context.Context, send store.Send) error {
	if s.sends.Add(1)%10 == 0 {
		s.dropped.Add(int64(len(send.Envelopes)))
		return nil
	}
	return s.Store.Enqueue(ctx, send)
}

// TestLossDetected: against a server that acknowledges sends it did not
// store, the report counts exactly the envelopes it dropped as lost.
func TestLossDetected(t *testing.T) {
	var lossy *lossyStore
	srv := startServer(t, unlimited(), func(st store.Store) store.Store {
		lossy = &lossyStore{Store: st}
		return lossy
	})
	_, r := run(t, Config{URLs: []string{srv.url}, Users: 4, Duration: 500 * time.Millisecond, DrainTimeout: 300 * time.Millisecond})
	if lossy.dropped.Load() == 0 {
		t.Fatal("nothing dropped; the run was too short")
	}
	if r.Lost != lossy.dropped.Load() {
		t.Errorf("report: %d lost; the server dropped %d", r.Lost, lossy.dropped.Load())
	}
	if !r.DrainTimedOut {
		t.Error("the drain did not time out waiting for lost messages")
	}
}

// forgetfulStore ignores the first ten acks: the server redelivers those
// envelopes on the next stream.
type forgetfulStore struct {
	store.Store
	calls, ignored atomic.Int64
}

func (s *forgetfulStore) Ack(ctx context.Context, id store.DeviceID, seqs []uint64) error {
	if s.calls.Add(1) <= 10 {
		s.ignored.Add(int64(len(seqs)))
		return nil
	}
	return s.Store.Ack(ctx, id, seqs)
}

// TestRedeliveriesDeduplicated: envelopes whose acks were lost come again
// in the final sweep; de-duplication absorbs every one of them, and
// nothing is counted twice as delivered.
func TestRedeliveriesDeduplicated(t *testing.T) {
	var fs *forgetfulStore
	srv := startServer(t, unlimited(), func(st store.Store) store.Store {
		fs = &forgetfulStore{Store: st}
		return fs
	})
	e, r := run(t, Config{URLs: []string{srv.url}, Users: 4, Duration: 500 * time.Millisecond})
	if fs.ignored.Load() == 0 {
		t.Fatal("no ack was ignored")
	}
	if r.Duplicates != fs.ignored.Load() {
		t.Errorf("%d duplicates absorbed; the server ignored acks of %d envelopes", r.Duplicates, fs.ignored.Load())
	}
	if r.Lost != 0 || r.Delivered != r.SentEnvelopes {
		t.Errorf("lost %d, delivered %d of %d", r.Lost, r.Delivered, r.SentEnvelopes)
	}
	if n := queued(t, e, srv.st); n != 0 {
		t.Errorf("%d envelopes left in the server's queues after the sweep", n)
	}
}

// TestRateLimitedSendsRetried: against a server with a tight per-IP rate
// limit the engine waits as told and sends again; nothing is lost or
// given up, and the refusals are counted by kind.
func TestRateLimitedSendsRetried(t *testing.T) {
	cfg := unlimited()
	cfg.IPRate, cfg.IPBurst = rate.Limit(100), 20
	srv := startServer(t, cfg, nil)
	_, r := run(t, Config{URLs: []string{srv.url}, Users: 4, Duration: time.Second})
	if r.Errors["send: resource_exhausted"] == 0 {
		t.Errorf("no rate-limited sends counted: %v", r.Errors)
	}
	if r.Lost != 0 || r.FailedSends != 0 || r.Delivered != r.SentEnvelopes {
		t.Errorf("lost %d, failed %d, delivered %d of %d", r.Lost, r.FailedSends, r.Delivered, r.SentEnvelopes)
	}
}

// TestPacedRate: with a target rate the engine sends at that rate, not
// faster.
func TestPacedRate(t *testing.T) {
	srv := startServer(t, unlimited(), nil)
	const target = 100.0
	_, r := run(t, Config{URLs: []string{srv.url}, Users: 4, Rate: target, Duration: 2 * time.Second})
	if r.SentPerSec > target*1.05 || r.SentPerSec < target*0.5 {
		t.Errorf("sent %.1f/s at a target of %.0f/s", r.SentPerSec, target)
	}
	if r.Lost != 0 {
		t.Errorf("lost %d", r.Lost)
	}
}

// TestFailoverToAnotherNode: a device whose node does not answer moves to
// the next URL; with one of two URLs dead from the start, everything
// still arrives.
func TestFailoverToAnotherNode(t *testing.T) {
	srv := startServer(t, unlimited(), nil)
	dead := deadURL(t)
	_, r := run(t, Config{URLs: []string{dead, srv.url}, Users: 4, Duration: 500 * time.Millisecond})
	if r.Sent == 0 || r.Lost != 0 || r.FailedSends != 0 || r.Delivered != r.SentEnvelopes {
		t.Errorf("sent %d, lost %d, failed %d, delivered %d of %d", r.Sent, r.Lost, r.FailedSends, r.Delivered, r.SentEnvelopes)
	}
	var unavailable int64
	for k, v := range r.Errors {
		if strings.HasSuffix(k, ": unavailable") {
			unavailable += v
		}
	}
	if unavailable == 0 {
		t.Errorf("no call to the dead node failed: %v", r.Errors)
	}
}

// TestHTTP1 runs the engine with its transports on HTTP/1.1: each
// device's delivery stream holds a connection of its own, so the calls
// open at least one more per device (on HTTP/2 they share the stream's),
// and every acknowledged message still arrives once.
func TestHTTP1(t *testing.T) {
	noLeaks(t)
	srv := startServer(t, unlimited(), nil)
	_, r := run(t, Config{URLs: []string{srv.url}, Users: 4, Duration: time.Second, HTTP1: true})
	if r.Sent < 10 {
		t.Fatalf("only %d messages sent in 1 s", r.Sent)
	}
	if r.Lost != 0 || r.FailedSends != 0 || r.Duplicates != 0 || r.Delivered != r.SentEnvelopes || len(r.Errors) != 0 {
		t.Errorf("sent %d envelopes, delivered %d; lost %d, failed %d, duplicates %d, errors %v",
			r.SentEnvelopes, r.Delivered, r.Lost, r.FailedSends, r.Duplicates, r.Errors)
	}
	if r.Protocol != "HTTP/1.1" || r.Connections < 2*int64(r.Devices) {
		t.Errorf("%s: %d connections for %d devices, want a stream's and a call's each", r.Protocol, r.Connections, r.Devices)
	}
}

// TestSampleCountsOnlyNodesThatFail: a scrape cut short because the
// sampler was stopped (its context ended) is not a failure of the node; a
// node that does not answer is.
func TestSampleCountsOnlyNodesThatFail(t *testing.T) {
	srv := startServer(t, unlimited(), nil)
	hc := newConn([]string{srv.url}, netip.Addr{}, new(atomic.Int64), false).hc
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	var ec errorCounts
	newMemoryLog([]string{srv.url}).sample(stopped, hc, &ec, false)
	if n := ec.total(); n != 0 {
		t.Errorf("a stopped sampler counted %d errors: %v", n, ec.snapshot())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	newMemoryLog([]string{dead}).sample(context.Background(), hc, &ec, false)
	if got := ec.snapshot()["metrics: scrape failed"]; got != 1 {
		t.Errorf("a node that does not answer counted %d times, want 1: %v", got, ec.snapshot())
	}
}

func TestReportText(t *testing.T) {
	srv := startServer(t, unlimited(), nil)
	_, r := run(t, Config{URLs: []string{srv.url}, Users: 2, Duration: 200 * time.Millisecond})
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sent", fmt.Sprintf("%d messages", r.Sent), "p99", "lost", "memory", srv.url} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestIdleStreams opens idle delivery streams against a real server and
// measures them: the server reports every one open, the memory figures
// are filled in, and the connections come from the source addresses.
func TestIdleStreams(t *testing.T) {
	noLeaks(t)
	srv := startServer(t, unlimited(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := Idle(ctx, IdleConfig{URL: srv.url, Streams: 300, SourceAddrs: SourceAddrs(3), Hold: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Open != 300 || r.Failed != 0 || len(r.Errors) != 0 {
		t.Fatalf("open %d, failed %d, errors %v", r.Open, r.Failed, r.Errors)
	}
	// 300 streams over 3 transports: at most 250 streams per connection
	// (the server's default), so each transport needs at least one.
	if r.Connections < 3 {
		t.Errorf("%d connections", r.Connections)
	}
	if n := srv.peers.count(); n != 3 {
		t.Errorf("the server saw %d client addresses, want 3", n)
	}
	if r.After.Goroutines <= r.Before.Goroutines || r.GoroutinesPerStream < 0.9 {
		t.Errorf("goroutines %d → %d (%.2f per stream): the streams are not open on the server", r.Before.Goroutines, r.After.Goroutines, r.GoroutinesPerStream)
	}
	if r.After.HeapInuse <= 0 || r.After.RSS <= 0 || r.After.StackInuse <= r.Before.StackInuse {
		t.Errorf("memory: %+v → %+v", r.Before, r.After)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "300 open") || !strings.Contains(b.String(), "per stream") {
		t.Errorf("text report:\n%s", b.String())
	}
	// The streams are closed again.
	deadline := time.Now().Add(10 * time.Second)
	for serverCounter(t, srv.url, "parleyd_streams") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("streams still open on the server after Idle returned")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
