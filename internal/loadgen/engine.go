package loadgen

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/internal/primitives"
)

// Engine runs load against parleyd nodes. Make one with New, register its
// devices with Setup (Run does it if needed), then call Run once.
type Engine struct {
	cfg     Config
	users   []*user
	devices []*device
	conns   []*conn
	scraper *http.Client
	dials   atomic.Int64
	runID   string
	setup   bool

	// t0 is the engine's clock: now() is t0 plus the monotonic time since,
	// so latencies never see a wall-clock step.
	t0 time.Time

	lat  histogram
	errs errorCounts

	sent, sentEnvelopes, failed           atomic.Int64
	delivered, duplicates, acked, corrupt atomic.Int64
	// outstanding counts (message, recipient device) pairs whose send
	// was acknowledged and which the device has not received yet.
	outstanding atomic.Int64
	streams     atomic.Int64

	drainTimedOut bool
	sweepFailed   atomic.Int64

	stopSending     chan struct{}
	stopSendingOnce sync.Once
}

// New checks cfg and prepares the engine; it makes no calls yet.
func New(cfg Config) (*Engine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var id [3]byte
	primitives.Random(id[:])
	e := &Engine{cfg: c, runID: hex.EncodeToString(id[:]), t0: time.Now(), stopSending: make(chan struct{})}
	e.conns = newConns(c.Conns, c.URLs, c.SourceAddrs, &e.dials, c.HTTP1)
	e.scraper = newConn(c.URLs, netip.Addr{}, new(atomic.Int64), false).hc
	return e, nil
}

// now returns the engine's clock as a time.Time.
func (e *Engine) now() time.Time { return e.t0.Add(time.Since(e.t0)) }

// StopSending ends the send phase of a Run early (or at once, if it has
// not started): the run goes on to drain, sweep and report.
func (e *Engine) StopSending() {
	e.stopSendingOnce.Do(func() { close(e.stopSending) })
}

// Close releases the engine's connections.
func (e *Engine) Close() {
	closeConns(e.conns)
	e.scraper.CloseIdleConnections()
}

// Setup generates and registers every virtual account and device and
// logs each device in. Accounts are named ld<run id>-<n>.
func (e *Engine) Setup(ctx context.Context) error {
	if e.setup {
		return nil
	}
	c := e.cfg
	e.users = make([]*user, c.Users)
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, c.SetupConcurrency)
		mu    sync.Mutex
		first error
	)
	for i := range e.users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := e.setupUser(ctx, i)
			if err != nil {
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
	e.setup = true
	return nil
}

func (e *Engine) setupUser(ctx context.Context, i int) error {
	c := e.cfg
	u, ups, err := newUser(fmt.Sprintf("ld%s-%d", e.runID, i), c.DevicesPerUser)
	if err != nil {
		return err
	}
	for j, d := range u.devices {
		d.index = i*c.DevicesPerUser + j
		d.conn = e.conns[d.index%len(e.conns)]
		d.nodes = len(c.URLs)
		d.node.Store(int32(d.index % len(c.URLs)))
	}
	if err := u.register(ctx, ups, &e.errs); err != nil {
		return err
	}
	e.users[i] = u
	return nil
}

// deviceList returns every device, in index order (after Setup).
func (e *Engine) deviceList() []*device {
	if e.devices == nil {
		for _, u := range e.users {
			e.devices = append(e.devices, u.devices...)
		}
	}
	return e.devices
}
