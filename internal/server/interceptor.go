package server

import (
	"context"
	"net"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/store"
)

// anonymous procedures may be called without a token, charged to the
// per-IP backup limit (BackupIPRate): a restoring device reads its
// account's device list before it is in it (docs/server.md §5.7). With a
// token they are ordinary authenticated calls.
var anonymous = map[string]bool{
	parleyv1connect.DirectoryServiceGetDeviceListProcedure: true,
}

// public procedures need no token.
var public = map[string]bool{
	parleyv1connect.AuthServiceChallengeProcedure:     true,
	parleyv1connect.AuthServiceAuthenticateProcedure:  true,
	parleyv1connect.DirectoryServiceRegisterProcedure: true,
	// A removed device has no token; it signs a challenge instead.
	parleyv1connect.DirectoryServiceGetRemovalProofProcedure: true,
	// A new device has no token: the mailbox address is its capability
	// (docs/server.md §5.6). GetOffer and PutFrame need one.
	parleyv1connect.ProvisioningServicePutOfferProcedure:      true,
	parleyv1connect.ProvisioningServiceReceiveFramesProcedure: true,
	parleyv1connect.ProvisioningServiceCloseMailboxProcedure:  true,
	parleyv1connect.BackupServiceGetBackupProcedure:           true,
	parleyv1connect.DirectoryServiceRecoverAccountProcedure:   true,
}

// transparencyProcedures are public and charged to the per-IP
// key-transparency limit (KTIPRate): auditors and witnesses have no
// account, and proofs cost the server VRF evaluations.
var transparencyProcedures = map[string]bool{
	parleyv1connect.TransparencyServiceGetConfigProcedure: true,
	parleyv1connect.TransparencyServiceGetHeadProcedure:   true,
	parleyv1connect.TransparencyServiceSearchProcedure:    true,
	parleyv1connect.TransparencyServiceMonitorProcedure:   true,
	parleyv1connect.TransparencyServiceGetEpochsProcedure: true,
}

// ipLimitKT names the per-IP key-transparency limit.
const ipLimitKT = "kt-ip"

type deviceKey struct{}

// caller returns the authenticated device of a request.
func caller(ctx context.Context) *store.Device {
	d, _ := ctx.Value(deviceKey{}).(*store.Device)
	return d
}

// interceptor applies, in order: the per-IP rate limit, authentication,
// the per-device rate limit, metrics and the error table.
type interceptor struct{ s *Server }

// admit checks a call. For a stream (which may stay open for hours) it
// keeps less in the context: the device's id and account without its
// public keys, and no child contexts of the request's left behind by the
// token check (see relayService.Receive).
func (i *interceptor) admit(ctx context.Context, procedure, peer string, header func(string) string, stream bool) (context.Context, error) {
	s := i.s
	select {
	case <-s.shuttingDown:
		return ctx, errShuttingDown
	default:
	}
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if d := s.ipLimits.wait(peer, s.now()); d > 0 {
		s.metrics.limited.WithLabelValues("ip").Inc()
		return ctx, &rateLimited{limit: "ip", after: d}
	}
	if transparencyProcedures[procedure] {
		if d := s.ktLimits.wait(peer, s.now()); d > 0 {
			s.metrics.limited.WithLabelValues(ipLimitKT).Inc()
			return ctx, &rateLimited{limit: ipLimitKT, after: d}
		}
		return ctx, nil
	}
	if public[procedure] {
		return ctx, nil
	}
	if anonymous[procedure] && header("Authorization") == "" {
		// A device restoring a backup looks up its own account before it
		// has a token: allowed at the tight per-IP backup rate.
		if d := s.backupLimits.wait(peer, s.now()); d > 0 {
			s.metrics.limited.WithLabelValues(ipLimitBackup).Inc()
			return ctx, &rateLimited{limit: ipLimitBackup, after: d}
		}
		return ctx, nil
	}
	actx := ctx
	if stream {
		var cancel context.CancelFunc
		actx, cancel = storeContext(ctx)
		defer cancel()
	}
	dev, err := s.authenticate(actx, header("Authorization"))
	if err != nil {
		return ctx, err
	}
	if d := s.deviceLimits.wait(string(dev.ID[:]), s.now()); d > 0 {
		s.metrics.limited.WithLabelValues("device").Inc()
		return ctx, &rateLimited{limit: "device", after: d}
	}
	return context.WithValue(ctx, deviceKey{}, dev), nil
}

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		proc := req.Spec().Procedure
		ctx, err := i.admit(ctx, proc, req.Peer().Addr, req.Header().Get, false)
		var resp connect.AnyResponse
		if err == nil {
			resp, err = next(ctx, req)
		}
		err = i.s.toConnect(ctx, proc, err)
		i.s.metrics.observe(proc, err, time.Since(start))
		return resp, err
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		proc := conn.Spec().Procedure
		ctx, err := i.admit(ctx, proc, conn.Peer().Addr, conn.RequestHeader().Get, true)
		if err == nil {
			err = next(ctx, conn)
		}
		err = i.s.toConnect(ctx, proc, err)
		i.s.metrics.observe(proc, err, time.Since(start))
		return err
	}
}

// limiterSet keeps one token bucket per key (device or IP address), and
// forgets idle ones so that the set does not grow without bound.
type limiterSet struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// limiterIdle is how long a bucket may sit unused before it is dropped; by
// then it has refilled completely, so dropping it changes nothing.
const limiterIdle = 10 * time.Minute

func newLimiterSet(limit rate.Limit, burst int) *limiterSet {
	return &limiterSet{limit: limit, burst: burst, buckets: map[string]*bucket{}}
}

// wait takes one token for key, or returns how long until one is free.
func (l *limiterSet) wait(key string, now time.Time) time.Duration {
	if l.limit == rate.Inf {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > limiterIdle {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > limiterIdle {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return limiterIdle
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}
