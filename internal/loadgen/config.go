package loadgen

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/parleyim/parley/internal/ackbatch"
)

// Config is one load run. Zero fields take the defaults listed.
type Config struct {
	// URLs are the server nodes; device i talks to URLs[i mod len], and
	// to the next URL when its node fails.
	URLs []string
	// Users is the number of virtual accounts (at least 2; default 100),
	// each with DevicesPerUser devices (default 1). A message goes to
	// every device of its recipient and every other device of its
	// sender, so with DevicesPerUser d one send carries 2d-1 envelopes.
	Users          int
	DevicesPerUser int
	// Rate is the target of sends per second over all devices; 0 sends
	// as fast as the server answers, each device with one send in flight.
	Rate float64
	// Duration of the send phase (default 10 s).
	Duration time.Duration
	// EnvelopeSize is the size of each encoded envelope, what the server
	// stores and counts against MaxEnvelopeSize (default
	// DefaultEnvelopeSize).
	EnvelopeSize int
	// Conns is the number of HTTP/2 transports the devices share (default:
	// one per device, as separate phones would have).
	Conns int
	// HTTP1 makes the transports speak HTTP/1.1 instead of HTTP/2: a
	// device's delivery stream then holds one connection and its calls go
	// over another (docs/performance.md, "Relay": what HTTP/2 costs per
	// call).
	HTTP1 bool
	// SourceAddrs are loopback addresses to dial from (see net.go); empty
	// lets the kernel choose.
	SourceAddrs []netip.Addr
	// AckBatch and AckDelay: a device acknowledges every AckBatch
	// envelopes, or AckDelay after the oldest it has not acknowledged
	// (defaults 64 and 100 ms, as the SDK and BenchmarkRelay do:
	// internal/ackbatch).
	AckBatch int
	AckDelay time.Duration
	// DrainTimeout bounds the wait, after the send phase, for every
	// acknowledged message to be delivered (default 30 s).
	DrainTimeout time.Duration
	// SetupConcurrency is how many accounts register at once (default 16).
	SetupConcurrency int
	// Progress, if set, is called about once a second during the run.
	Progress func(Progress)
	// Logger receives debug logs (default: none).
	Logger *slog.Logger
}

// Defaults.
const (
	// DefaultEnvelopeSize is the envelope of a short chat message on a
	// confirmed session: 64 bytes of text padded to 256, with the ratchet
	// header and the AEAD tag (the size BenchmarkRelay measures).
	DefaultEnvelopeSize = 338
	defaultUsers        = 100
	defaultDuration     = 10 * time.Second
	defaultDrain        = 30 * time.Second
	defaultSetup        = 16
	// progressInterval is how often Progress is called and the servers'
	// memory is sampled.
	progressInterval = time.Second
)

func (c *Config) withDefaults() (Config, error) {
	o := *c
	if o.Users == 0 {
		o.Users = defaultUsers
	}
	if o.DevicesPerUser == 0 {
		o.DevicesPerUser = 1
	}
	if o.Duration == 0 {
		o.Duration = defaultDuration
	}
	if o.EnvelopeSize == 0 {
		o.EnvelopeSize = DefaultEnvelopeSize
	}
	if o.Conns == 0 {
		o.Conns = o.Users * o.DevicesPerUser
	}
	if o.AckBatch == 0 {
		o.AckBatch = ackbatch.DefaultMax
	}
	if o.AckDelay == 0 {
		o.AckDelay = ackbatch.DefaultDelay
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = defaultDrain
	}
	if o.SetupConcurrency == 0 {
		o.SetupConcurrency = defaultSetup
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Users < 2:
		return o, fmt.Errorf("loadgen: need at least 2 users, got %d", o.Users)
	case o.DevicesPerUser < 1 || o.DevicesPerUser > 8:
		return o, fmt.Errorf("loadgen: devices per user must be 1 to 8, got %d", o.DevicesPerUser)
	case o.Rate < 0:
		return o, fmt.Errorf("loadgen: negative rate %v", o.Rate)
	case o.Duration < 0:
		return o, fmt.Errorf("loadgen: negative duration %v", o.Duration)
	case o.EnvelopeSize < MinEnvelopeSize || o.EnvelopeSize > MaxEnvelopeSize:
		return o, fmt.Errorf("loadgen: envelope size %d outside [%d, %d]", o.EnvelopeSize, MinEnvelopeSize, MaxEnvelopeSize)
	case o.Conns < 1:
		return o, fmt.Errorf("loadgen: need at least one connection, got %d", o.Conns)
	case o.AckBatch < 1 || o.AckBatch > maxAckBatch:
		return o, fmt.Errorf("loadgen: ack batch must be 1 to %d, got %d", maxAckBatch, o.AckBatch)
	}
	urls, err := checkURLs(o.URLs, o.SourceAddrs)
	if err != nil {
		return o, err
	}
	o.URLs = urls
	return o, nil
}

// maxAckBatch is the server's limit on seqs per Ack call.
const maxAckBatch = 1000
