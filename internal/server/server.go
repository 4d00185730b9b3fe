// Package server implements parleyd's API, as specified in docs/server.md:
// authentication, the directory (accounts, signed device lists, prekeys)
// and the relay (per-device durable queues and delivery streams).
//
// The server keeps only public keys, signed statements and ciphertext. It
// parses and verifies what it can (device lists, prekey signatures, envelope
// structure) so that garbage never reaches other clients, but clients verify
// everything themselves and never trust it.
//
// Server is an http.Handler factory: it does not listen. cmd/parleyd mounts
// it; tests mount it on a loopback listener. Storage and notifications come
// in through the store.Store and bus.Bus seams.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/provision"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/wire"
)

// RegistrationMode says who may create accounts.
type RegistrationMode int

const (
	// RegistrationOpen lets anyone register.
	RegistrationOpen RegistrationMode = iota
	// RegistrationInvite requires an unused invite token.
	RegistrationInvite
	// RegistrationClosed refuses every registration.
	RegistrationClosed
)

func (m RegistrationMode) String() string {
	switch m {
	case RegistrationOpen:
		return "open"
	case RegistrationInvite:
		return "invite"
	case RegistrationClosed:
		return "closed"
	default:
		return fmt.Sprintf("RegistrationMode(%d)", int(m))
	}
}

// ParseRegistrationMode parses "open", "invite" or "closed".
func ParseRegistrationMode(s string) (RegistrationMode, error) {
	for _, m := range []RegistrationMode{RegistrationOpen, RegistrationInvite, RegistrationClosed} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("server: unknown registration mode %q (want open, invite or closed)", s)
}

// Config holds the server's settings. Every limit is a setting with a
// default from DefaultConfig; docs/server.md §7 lists them.
type Config struct {
	Registration RegistrationMode

	TokenTTL     time.Duration // how long a bearer token is valid
	ChallengeTTL time.Duration // how long a challenge may be answered

	MessageTTL          time.Duration // how long an envelope waits in a queue
	MaxQueue            int           // envelopes per device queue
	MaxEnvelopeSize     int           // bytes per envelope body
	MaxPrekeysPerUpload int           // one-time prekeys of each kind per upload
	PrekeyLowWater      int           // tell a device to replenish below this

	// Rate limits: sustained requests per second and burst, per
	// authenticated device and per client IP address.
	DeviceRate  rate.Limit
	DeviceBurst int
	IPRate      rate.Limit
	IPBurst     int

	// Provisioning mailboxes (docs/server.md §5.6).
	MailboxTTL      time.Duration // life of a mailbox until its first frame
	MailboxIdleTTL  time.Duration // life of a mailbox after each frame
	MaxMailboxBytes int64         // total bytes of one mailbox's frames
	// Per client IP address: mailbox creations and lookups of addresses
	// that hold no mailbox, per second and burst.
	MailboxIPRate  rate.Limit
	MailboxIPBurst int

	// Backups (docs/server.md §5.7).
	MaxBackupSize     int64         // bytes of one backup generation
	BackupGenerations int           // generations kept per locator
	BackupUploadTTL   time.Duration // life of an upload until it is committed
	// Per client IP address: backup downloads, per second and burst.
	BackupIPRate  rate.Limit
	BackupIPBurst int

	// Key transparency (docs/transparency.md, "Server").
	KTOrigin string // the checkpoint origin and key name
	// KTEpochInterval is how often the sequencer makes an epoch of the
	// pending updates (and followers look for new epochs).
	KTEpochInterval time.Duration
	// KTMaxEpochAge is how old the newest epoch may grow before the
	// sequencer publishes an empty one; at most verify.DefaultMaxAge/2.
	KTMaxEpochAge time.Duration
	// KTWitnesses are the witnesses checkpoints are submitted to, and
	// KTWitnessThreshold how many of them must cosign a checkpoint before
	// it is served (-1: all of them).
	KTWitnesses        []Witness
	KTWitnessThreshold int
	KTWitnessTimeout   time.Duration // one submission to one witness
	// Per client IP address: TransparencyService calls, per second and
	// burst.
	KTIPRate  rate.Limit
	KTIPBurst int
	// KTVRFCacheEntries bounds the cache of VRF proofs that searches
	// (GetDeviceList, Search, Monitor) reuse (kt.VRFCache); 0 turns it
	// off.
	KTVRFCacheEntries int
	// NodeCacheTTL is how long a node trusts what it read of a device (to
	// authenticate it) or of an account's device set (to check a send)
	// before reading it again (nodecache.go); 0 reads on every call.
	// Other nodes see a device list change at most this late.
	NodeCacheTTL time.Duration

	Logger *slog.Logger
}

// DefaultConfig returns the defaults parleyd runs with.
func DefaultConfig() Config {
	return Config{
		Registration:        RegistrationOpen,
		TokenTTL:            time.Hour,
		ChallengeTTL:        2 * time.Minute,
		MessageTTL:          30 * 24 * time.Hour,
		MaxQueue:            10_000,
		MaxEnvelopeSize:     4 + wire.MaxEnvelopeBody,
		MaxPrekeysPerUpload: 200,
		PrekeyLowWater:      20,
		DeviceRate:          200,
		DeviceBurst:         400,
		IPRate:              500,
		IPBurst:             1000,
		MailboxTTL:          provision.MaxOfferAge,
		MailboxIdleTTL:      time.Hour,
		MaxMailboxBytes:     1 << 30,
		MailboxIPRate:       rate.Every(6 * time.Second),
		MailboxIPBurst:      20,
		MaxBackupSize:       4 << 30,
		BackupGenerations:   3,
		BackupUploadTTL:     24 * time.Hour,
		BackupIPRate:        rate.Every(6 * time.Second),
		BackupIPBurst:       20,
		KTOrigin:            DefaultKTOrigin,
		KTEpochInterval:     time.Second,
		KTMaxEpochAge:       time.Hour,
		KTWitnessThreshold:  -1,
		KTWitnessTimeout:    10 * time.Second,
		KTIPRate:            100,
		KTIPBurst:           200,
		KTVRFCacheEntries:   kt.DefaultVRFCacheEntries,
		NodeCacheTTL:        DefaultNodeCacheTTL,
		Logger:              slog.Default(),
	}
}

// DefaultKTOrigin is the checkpoint origin when none is configured;
// operators should set their server's name (docs/operations.md).
const DefaultKTOrigin = "parley.invalid/kt"

// Server serves the Parley API.
type Server struct {
	cfg   Config
	store store.Store
	bus   bus.Bus
	log   *slog.Logger
	now   func() time.Time

	tokenKey     []byte // MACs challenges and tokens; shared by every node through the store
	deviceLimits *limiterSet
	cache        nodeCaches
	handoffs     handoffs // live streams on this node that take envelopes from sends (handoff.go)
	ipLimits     *limiterSet
	prov         provisioning  // mailboxes; see provisioning.go
	backups      store.Backups // nil when the store keeps none; see backup.go
	backupLimits *limiterSet
	kt           *ktLog // key transparency; see transparency.go
	ktLimits     *limiterSet

	// streamsCtx is cancelled by Shutdown so that delivery streams end and
	// the HTTP server can drain.
	streamsCtx    context.Context
	stopStreams   context.CancelFunc
	streams       sync.WaitGroup
	shuttingDown  chan struct{}
	shutdownOnce  sync.Once
	metrics       *metrics
	maxAckPerCall int
}

// secretName names the token key in the store.
const secretName = "auth-token-key-v1"

// New returns a server on st and b. It loads (or creates) the token key
// from the store, so that every node sharing the store accepts the others'
// tokens. If st also implements store.Mailboxes the server relays device
// links (ProvisioningService); otherwise those calls are Unimplemented.
func New(cfg Config, st store.Store, b bus.Bus) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.KTEpochInterval <= 0 || cfg.KTMaxEpochAge <= 0 || cfg.KTMaxEpochAge > verify.DefaultMaxAge/2 {
		return nil, fmt.Errorf("server: KTEpochInterval %v and KTMaxEpochAge %v: both must be positive, and KTMaxEpochAge at most %v so that clients' freshness check passes",
			cfg.KTEpochInterval, cfg.KTMaxEpochAge, verify.DefaultMaxAge/2)
	}
	if cfg.KTWitnessThreshold > len(cfg.KTWitnesses) || cfg.KTWitnessThreshold < -1 {
		return nil, fmt.Errorf("server: KTWitnessThreshold %d with %d witnesses", cfg.KTWitnessThreshold, len(cfg.KTWitnesses))
	}
	if cfg.BackupGenerations < 1 {
		return nil, fmt.Errorf("server: BackupGenerations is %d: at least one backup generation must be kept", cfg.BackupGenerations)
	}
	if cfg.NodeCacheTTL < 0 {
		return nil, fmt.Errorf("server: NodeCacheTTL is %v: give 0 to read on every call, or a positive time", cfg.NodeCacheTTL)
	}
	key, err := st.Secret(context.Background(), secretName, func() []byte {
		k := make([]byte, primitives.KeySize)
		primitives.Random(k)
		return k
	})
	if err != nil {
		return nil, fmt.Errorf("server: loading the token key: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:           cfg,
		store:         st,
		bus:           b,
		log:           cfg.Logger,
		now:           time.Now,
		tokenKey:      key,
		deviceLimits:  newLimiterSet(cfg.DeviceRate, cfg.DeviceBurst),
		cache:         newNodeCaches(cfg.NodeCacheTTL),
		ipLimits:      newLimiterSet(cfg.IPRate, cfg.IPBurst),
		prov:          newProvisioning(cfg, st),
		backupLimits:  newLimiterSet(cfg.BackupIPRate, cfg.BackupIPBurst),
		ktLimits:      newLimiterSet(cfg.KTIPRate, cfg.KTIPBurst),
		streamsCtx:    ctx,
		stopStreams:   cancel,
		shuttingDown:  make(chan struct{}),
		metrics:       newMetrics(),
		maxAckPerCall: 1000,
	}
	s.backups, _ = st.(store.Backups)
	if t, ok := st.(store.Transparency); ok {
		if s.kt, err = newKTLog(context.Background(), s, t); err != nil {
			cancel()
			return nil, fmt.Errorf("server: key transparency: %w", err)
		}
	}
	return s, nil
}

// Handler returns the HTTP handler: the Connect services, /healthz
// and /metrics.
func (s *Server) Handler() http.Handler {
	opts := connect.WithHandlerOptions(
		connect.WithInterceptors(&interceptor{s: s}),
		// No gzip: everything this API carries is ciphertext, keys and
		// signatures, which do not compress, and compressing every pushed
		// envelope was the largest item in the relay's profile
		// (docs/performance.md).
		connect.WithCompression("gzip", nil, nil),
		connect.WithReadMaxBytes(max(s.cfg.MaxEnvelopeSize*2*identity.MaxDevices, MaxBackupChunk)+64<<10),
	)
	mux := http.NewServeMux()
	mux.Handle(parleyv1connect.NewAuthServiceHandler(&authService{s}, opts))
	mux.Handle(parleyv1connect.NewDirectoryServiceHandler(&directoryService{s}, opts))
	mux.Handle(parleyv1connect.NewRelayServiceHandler(&relayService{s}, opts))
	mux.Handle(parleyv1connect.NewProvisioningServiceHandler(&provisioningService{s}, opts))
	mux.Handle(parleyv1connect.NewBackupServiceHandler(&backupService{s}, opts))
	mux.Handle(parleyv1connect.NewTransparencyServiceHandler(&transparencyService{s}, opts))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", s.metrics.handler())
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.shuttingDown:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintln(w, "ok")
}

// Shutdown ends every delivery stream (clients reconnect elsewhere or
// later) and waits for their handlers to return, so that the caller's
// http.Server.Shutdown can then drain in-flight unary calls. It does not
// close the store: in-flight sends must finish first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		close(s.shuttingDown)
		s.stopStreams()
	})
	done := make(chan struct{})
	go func() { s.streams.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RunExpiry deletes expired envelopes and provisioning mailboxes every
// interval until ctx ends.
func (s *Server) RunExpiry(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.store.Expire(ctx, s.now())
			if err != nil && !errors.Is(err, context.Canceled) {
				s.log.Warn("expiring envelopes", "err", err)
			}
			if n > 0 {
				s.log.Info("expired envelopes", "count", n)
				s.metrics.expired.Add(float64(n))
			}
			s.expireMailboxes(ctx)
			s.expireBackupUploads(ctx)
		}
	}
}
