package loadgen

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/primitives"
)

// Idle streams. An idle delivery stream is what most devices hold most of
// the time: registered, authenticated, queue empty, waiting. Idle measures
// what one costs the server: it registers Streams devices on one node,
// samples the node's memory, opens every device's stream (each reads its
// queue to the Drained marker, then nobody reads it again), holds them,
// samples again, and divides the difference by the streams the node
// reports open (parleyd_streams).
//
// Go's heap holds garbage until the next collection, so a sample taken
// right after registration would count registration's garbage as live, and
// the difference would come out too small. With Settle, each sample waits
// (at most that long) for the node to finish a garbage collection first;
// an idle Go process collects at least every two minutes.

// IdleConfig is one idle-streams measurement.
type IdleConfig struct {
	URL     string
	Streams int
	// Conns is the number of HTTP/2 transports (default: one per source
	// address, or 1). Each opens as many TCP connections as the node's
	// limit on concurrent streams per connection requires.
	Conns       int
	SourceAddrs []netip.Addr
	// SetupConcurrency (default 32) and OpenConcurrency (default 256):
	// registrations and stream openings in flight at once.
	SetupConcurrency int
	OpenConcurrency  int
	// Hold is how long the streams stay open before the second sample
	// (default 5 s); Settle bounds each wait for a garbage collection
	// (0: sample at once).
	Hold     time.Duration
	Settle   time.Duration
	Progress func(string)
	Logger   *slog.Logger
}

// IdleReport is what Idle measured.
type IdleReport struct {
	URL         string  `json:"url"`
	Streams     int     `json:"streams"`     // asked for
	Open        int64   `json:"open"`        // open on the node at the second sample
	Failed      int64   `json:"failed"`      // streams that did not open
	Connections int64   `json:"connections"` // TCP connections opened
	RegisterSec float64 `json:"register_seconds"`
	OpenSec     float64 `json:"open_seconds"`
	Settled     bool    `json:"settled"` // both samples followed a garbage collection

	Before ServerSample `json:"before"`
	After  ServerSample `json:"after"`

	RSSPerStream        float64          `json:"rss_bytes_per_stream"`
	HeapPerStream       float64          `json:"heap_inuse_bytes_per_stream"`
	StackPerStream      float64          `json:"stack_inuse_bytes_per_stream"`
	GoroutinesPerStream float64          `json:"goroutines_per_stream"`
	Errors              map[string]int64 `json:"errors"`
}

const (
	defaultIdleSetup = 32
	defaultIdleOpen  = 256
	defaultIdleHold  = 5 * time.Second
)

// Idle runs the idle-streams measurement.
func Idle(ctx context.Context, cfg IdleConfig) (*IdleReport, error) {
	if cfg.Streams < 1 {
		return nil, fmt.Errorf("loadgen: need at least one stream, got %d", cfg.Streams)
	}
	urls, err := checkURLs([]string{cfg.URL}, cfg.SourceAddrs)
	if err != nil {
		return nil, err
	}
	if cfg.Conns == 0 {
		cfg.Conns = max(len(cfg.SourceAddrs), 1)
	}
	if cfg.SetupConcurrency == 0 {
		cfg.SetupConcurrency = defaultIdleSetup
	}
	if cfg.OpenConcurrency == 0 {
		cfg.OpenConcurrency = defaultIdleOpen
	}
	if cfg.Hold == 0 {
		cfg.Hold = defaultIdleHold
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	var dials atomic.Int64
	conns := newConns(cfg.Conns, urls, cfg.SourceAddrs, &dials, false)
	defer closeConns(conns)
	scraper := newConn(urls, netip.Addr{}, new(atomic.Int64), false).hc
	defer scraper.CloseIdleConnections()
	r := &IdleReport{URL: urls[0], Streams: cfg.Streams}
	var ec errorCounts

	// Register, one device per account.
	var id [3]byte
	primitives.Random(id[:])
	run := hex.EncodeToString(id[:])
	devs := make([]*device, cfg.Streams)
	start := time.Now()
	var registered atomic.Int64
	err = forEach(ctx, cfg.Streams, cfg.SetupConcurrency, func(i int) error {
		u, ups, err := newUser(fmt.Sprintf("li%s-%d", run, i), 1)
		if err != nil {
			return err
		}
		d := u.devices[0]
		d.index, d.conn, d.nodes = i, conns[i%len(conns)], 1
		if err := u.register(ctx, ups, &ec); err != nil {
			return err
		}
		// The stream needs only the token (valid for the server's
		// TokenTTL, an hour by default). The keys' expanded ML-DSA
		// private halves are tens of KiB each, which at 100,000
		// devices would take gigabytes of the load tool's memory.
		u.key, d.keys = nil, nil
		devs[i] = d
		if n := registered.Add(1); n%1000 == 0 || n == int64(cfg.Streams) {
			progress(fmt.Sprintf("registered %d/%d devices", n, cfg.Streams))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.RegisterSec = time.Since(start).Seconds()

	progress("waiting for the server's memory to settle")
	before, settledBefore, err := settledSample(ctx, scraper, urls[0], cfg.Settle)
	if err != nil {
		return nil, err
	}
	r.Before = before

	// Open the streams; each reads to its Drained marker and is then left
	// alone until ctx ends.
	streamCtx, closeStreams := context.WithCancel(ctx)
	defer closeStreams()
	var (
		open, failed atomic.Int64
		mu           sync.Mutex
		held         []*connect.ServerStreamForClient[parleyv1.ReceiveResponse]
	)
	defer func() {
		closeStreams()
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range held {
			_ = rs.Close()
		}
	}()
	start = time.Now()
	_ = forEach(ctx, cfg.Streams, cfg.OpenConcurrency, func(i int) error {
		d := devs[i]
		rs, err := d.clients().relay.Receive(streamCtx, authed(d.currentToken(), &parleyv1.ReceiveRequest{}))
		if err == nil {
			err = untilDrained(rs)
		}
		if err != nil {
			ec.add("receive", err)
			failed.Add(1)
			if rs != nil {
				_ = rs.Close()
			}
			return nil
		}
		// Nobody reads it again: an idle stream costs the load tool no
		// goroutine of its own.
		mu.Lock()
		held = append(held, rs)
		mu.Unlock()
		if n := open.Add(1); n%1000 == 0 || n == int64(cfg.Streams) {
			progress(fmt.Sprintf("opened %d/%d streams", n, cfg.Streams))
		}
		return nil
	})
	r.OpenSec = time.Since(start).Seconds()
	r.Failed = failed.Load()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	progress(fmt.Sprintf("holding %d streams for %v", open.Load(), cfg.Hold))
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	after, settledAfter, err := settledSample(ctx, scraper, urls[0], cfg.Settle)
	if err != nil {
		return nil, err
	}
	r.After = after
	r.Settled = settledBefore && settledAfter
	r.Open = after.Streams - before.Streams
	r.Connections = dials.Load()
	if r.Open > 0 {
		n := float64(r.Open)
		r.RSSPerStream = float64(after.RSS-before.RSS) / n
		r.HeapPerStream = float64(after.HeapInuse-before.HeapInuse) / n
		r.StackPerStream = float64(after.StackInuse-before.StackInuse) / n
		r.GoroutinesPerStream = float64(after.Goroutines-before.Goroutines) / n
	}
	r.Errors = ec.snapshot()
	return r, nil
}

// untilDrained reads a fresh stream up to its Drained marker.
func untilDrained(rs *connect.ServerStreamForClient[parleyv1.ReceiveResponse]) error {
	for rs.Receive() {
		if rs.Msg().GetDrained() != nil {
			return nil
		}
	}
	if err := rs.Err(); err != nil {
		return err
	}
	return fmt.Errorf("loadgen: the server closed the delivery stream before draining it")
}

// settledSample samples a node, first waiting (at most settle) until it
// has completed a garbage collection, and says whether it had.
func settledSample(ctx context.Context, hc *http.Client, url string, settle time.Duration) (ServerSample, bool, error) {
	first, err := scrape(ctx, hc, url)
	if err != nil || settle <= 0 {
		return first, false, err
	}
	deadline := time.Now().Add(settle)
	for time.Now().Before(deadline) {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ServerSample{}, false, ctx.Err()
		}
		s, err := scrape(ctx, hc, url)
		if err != nil {
			return ServerSample{}, false, err
		}
		if s.gcCount > first.gcCount {
			// A collection finished since the first sample; this sample's
			// heap is what survived it, plus what the scrapes allocated.
			return s, true, nil
		}
	}
	s, err := scrape(ctx, hc, url)
	return s, false, err
}

// forEach runs fn(0..n-1) with at most conc in flight, stopping at the
// first error.
func forEach(ctx context.Context, n, conc int, fn func(int) error) error {
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, conc)
		mu    sync.Mutex
		first error
	)
	for i := range n {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// WriteText writes the report for people.
func (r *IdleReport) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	kib := func(b float64) string { return fmt.Sprintf("%.2f KiB", b/1024) }
	p("server\t%s", r.URL)
	p("streams\t%d open (%d asked for, %d failed) over %d TCP connections", r.Open, r.Streams, r.Failed, r.Connections)
	p("time\tregistration %.1fs, opening %.1fs", r.RegisterSec, r.OpenSec)
	settled := "yes"
	if !r.Settled {
		settled = "no (heap figures include uncollected garbage; use --settle)"
	}
	p("settled\t%s", settled)
	p("")
	p("\tbefore\tafter\tper stream")
	p("RSS\t%s\t%s\t%s", mib(r.Before.RSS), mib(r.After.RSS), kib(r.RSSPerStream))
	p("heap in use\t%s\t%s\t%s", mib(r.Before.HeapInuse), mib(r.After.HeapInuse), kib(r.HeapPerStream))
	p("stacks\t%s\t%s\t%s", mib(r.Before.StackInuse), mib(r.After.StackInuse), kib(r.StackPerStream))
	p("goroutines\t%d\t%d\t%.2f", r.Before.Goroutines, r.After.Goroutines, r.GoroutinesPerStream)
	if len(r.Errors) > 0 {
		var parts []string
		for k, v := range r.Errors {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		p("")
		p("errors\t%s", strings.Join(parts, ", "))
	}
	return tw.Flush()
}
