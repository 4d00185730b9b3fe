package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
)

// Key transparency (docs/client.md §10, docs/transparency.md §8). A client
// pins the log's configuration when its home is created, keeps the newest
// checkpoint it verified (verify.Trusted) and checks every device-list
// lookup against it; it monitors its own account and compares checkpoints
// with its contacts. All of it runs under c.mu.

// Settings of the local store.
const (
	// settingLogConfig is the pinned log configuration, a
	// GetTransparencyConfigResponse in protobuf encoding.
	settingLogConfig = "kt/config"
	// settingTrusted is the newest verified checkpoint (verify.Trusted).
	settingTrusted = "kt/trusted"
	// settingMonitor is the own-account monitor's position: u32 the next
	// KT version to monitor || the value of the version before it (empty
	// when the next is 0).
	settingMonitor = "kt/monitor"
)

// Limits.
const (
	// DefaultEpochInterval is assumed when a pinned configuration does not
	// say how often the log publishes.
	DefaultEpochInterval = time.Second
	// sequenceWaitEpochs is how many epoch intervals a lookup waits for a
	// new account's first device list to be sequenced into the log before
	// it gives up.
	sequenceWaitEpochs = 8
	// minSequenceWait is the least time a lookup waits for it.
	minSequenceWait = 2 * time.Second
	// maxUnsequenced bounds the device-list versions published since the
	// newest epoch that a lookup accepts on top of the logged one.
	maxUnsequenced = 16
	// maxCheckedPeers bounds the memory of contacts' checkpoints found
	// consistent (forgotten all at once when full: a re-check costs one
	// GetHead).
	maxCheckedPeers = 1024
)

// ErrNotInLog is wrapped by the security error of a lookup whose device
// list the log still did not hold after the bounded wait: the server hands
// out a device list it has not committed to.
var ErrNotInLog = errors.New("client: the key-transparency log does not hold this account's device list")

// LogConfig is a key-transparency log's public configuration: what a
// client pins (trust on first use, or given out of band in
// Options.LogConfig) and verifies every lookup against.
type LogConfig struct {
	// Ed25519VKey and HybridVKey are the log's note verifier keys
	// (docs/transparency.md §7); both name the log's origin.
	Ed25519VKey, HybridVKey string
	// VRFPublicKey is the log's 32-byte VRF key.
	VRFPublicKey []byte
	// WitnessVKeys are cosignature/v1 verifier keys; at least
	// WitnessThreshold of them must cosign every checkpoint.
	WitnessVKeys     []string
	WitnessThreshold int
	// EpochInterval is how often the log publishes (0: DefaultEpochInterval).
	EpochInterval time.Duration
}

func (lc *LogConfig) proto() *parleyv1.GetTransparencyConfigResponse {
	return &parleyv1.GetTransparencyConfigResponse{
		Ed25519Vkey: lc.Ed25519VKey, HybridVkey: lc.HybridVKey, VrfPublicKey: lc.VRFPublicKey,
		WitnessVkeys: lc.WitnessVKeys, WitnessThreshold: uint32(lc.WitnessThreshold),
		EpochIntervalMs: uint64(lc.EpochInterval / time.Millisecond),
	}
}

func logConfigFromProto(p *parleyv1.GetTransparencyConfigResponse) *LogConfig {
	return &LogConfig{
		Ed25519VKey: p.Ed25519Vkey, HybridVKey: p.HybridVkey, VRFPublicKey: p.VrfPublicKey,
		WitnessVKeys: p.WitnessVkeys, WitnessThreshold: int(p.WitnessThreshold),
		EpochInterval: time.Duration(p.EpochIntervalMs) * time.Millisecond,
	}
}

// Verifier builds the verifier of the configuration.
func (lc *LogConfig) Verifier() (*verify.Config, error) {
	var ws []note.Verifier
	for _, vk := range lc.WitnessVKeys {
		w, err := kt.NewCosignatureVerifier(vk)
		if err != nil {
			return nil, fmt.Errorf("client: witness key %q: %w", vk, err)
		}
		ws = append(ws, w)
	}
	return verify.NewConfig(lc.Ed25519VKey, lc.HybridVKey, lc.VRFPublicKey, verify.WitnessPolicy{Witnesses: ws, Threshold: lc.WitnessThreshold})
}

func (lc *LogConfig) interval() time.Duration {
	if lc.EpochInterval > 0 {
		return lc.EpochInterval
	}
	return DefaultEpochInterval
}

// FetchLogConfig asks a server for its log's configuration (GetConfig).
// The answer is only as trustworthy as the connection: pin it once, or
// compare it with one published out of band.
func FetchLogConfig(ctx context.Context, server string, hc *http.Client) (*LogConfig, error) {
	server, err := NormalizeServerURL(server)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	tc := parleyv1connect.NewTransparencyServiceClient(hc, server)
	resp, err := tc.GetConfig(ctx, connect.NewRequest(&parleyv1.GetTransparencyConfigRequest{}))
	if err != nil {
		return nil, wrapRPC("fetching the key-transparency configuration", err)
	}
	lc := logConfigFromProto(resp.Msg)
	if _, err := lc.Verifier(); err != nil {
		return nil, securityError("key-transparency configuration", err)
	}
	return lc, nil
}

// pinLog stores the log configuration in a new home: the one given in
// opts, or the server's (trust on first use).
func (c *Client) pinLog(ctx context.Context, opts Options, hc *http.Client) error {
	lc := opts.LogConfig
	if lc == nil {
		var err error
		if lc, err = FetchLogConfig(ctx, c.server, hc); err != nil {
			return err
		}
	}
	v, err := lc.Verifier()
	if err != nil {
		return err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(lc.proto())
	if err != nil {
		return err
	}
	if err := c.db.SetSetting(ctx, settingLogConfig, raw); err != nil {
		return err
	}
	c.logCfg, c.kt = lc, v
	return nil
}

// loadLog reads the pinned configuration and the trusted checkpoint.
func (c *Client) loadLog(ctx context.Context) error {
	raw, err := c.db.Setting(ctx, settingLogConfig)
	if errors.Is(err, clientdb.ErrNotFound) {
		return fmt.Errorf("client: this home has no pinned key-transparency configuration (it was made by an older version); set it up again: %w", clientdb.ErrCorrupt)
	} else if err != nil {
		return err
	}
	var p parleyv1.GetTransparencyConfigResponse
	if err := proto.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("client: stored key-transparency configuration: %w", clientdb.ErrCorrupt)
	}
	lc := logConfigFromProto(&p)
	v, err := lc.Verifier()
	if err != nil {
		return fmt.Errorf("client: stored key-transparency configuration: %w", err)
	}
	c.logCfg, c.kt = lc, v
	t, err := c.db.Setting(ctx, settingTrusted)
	if errors.Is(err, clientdb.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if c.trusted, err = verify.UnmarshalTrusted(t); err != nil {
		return fmt.Errorf("client: stored key-transparency checkpoint: %w", err)
	}
	return nil
}

// LogConfig returns the pinned key-transparency configuration.
func (c *Client) LogConfig() *LogConfig { return c.logCfg }

// Checkpoint returns the newest key-transparency checkpoint this device
// verified (the signed note), or nil before its first lookup.
func (c *Client) Checkpoint() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.trusted == nil {
		return nil
	}
	return bytes.Clone(c.trusted.Note)
}

// fromSize is the log size the client trusts, for consistency proofs.
func (c *Client) fromSize() uint64 {
	if c.trusted == nil {
		return 0
	}
	return c.trusted.Checkpoint.Size
}

// verifyHead decodes and verifies a head against the trusted checkpoint.
func (c *Client) verifyHead(what string, raw []byte) (*verify.Trusted, error) {
	h, err := kt.UnmarshalHead(raw)
	if err != nil {
		return nil, securityError(what, &verify.Error{Kind: verify.BadProof, Reason: "head", Err: err})
	}
	t, err := c.kt.VerifyHead(c.trusted, h, c.now())
	if err != nil {
		return nil, securityError(what, err)
	}
	return t, nil
}

// commitTrusted stores a checkpoint once everything verified against it.
func (c *Client) commitTrusted(ctx context.Context, t *verify.Trusted) error {
	if c.trusted != nil && t.Checkpoint.Size == c.trusted.Checkpoint.Size {
		return nil // verified equal (VerifyHead)
	}
	if err := c.db.SetSetting(ctx, settingTrusted, t.Marshal()); err != nil {
		return err
	}
	c.trusted = t
	return nil
}

// getDeviceList is a GetDeviceList call: authenticated, or anonymous for a
// device that is not in the account yet (restore).
type getDeviceList func(context.Context, *parleyv1.GetDeviceListRequest) (*parleyv1.GetDeviceListResponse, error)

func (c *Client) authedGet(ctx context.Context, req *parleyv1.GetDeviceListRequest) (*parleyv1.GetDeviceListResponse, error) {
	return call(ctx, c, "fetching the device list of "+req.Username, c.dir.GetDeviceList, req)
}

func (c *Client) anonymousGet(ctx context.Context, req *parleyv1.GetDeviceListRequest) (*parleyv1.GetDeviceListResponse, error) {
	resp, err := c.dir.GetDeviceList(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, wrapRPC("fetching the device list of "+req.Username, err)
	}
	return resp.Msg, nil
}

// lookup fetches name's current device list with its key-transparency
// proofs and verifies them (docs/client.md §10.2): the head against the
// trusted checkpoint, the search proof for name, then the served list: the
// committed value itself, or a successor published since the newest epoch,
// signed by the same account key and chained to it. It returns the served
// list and the checkpoint to commit once the caller's own checks pass. A
// name the log does not hold yet is asked again for a few epochs.
func (c *Client) lookup(ctx context.Context, name string, get getDeviceList) (*identity.SignedDeviceList, *verify.Trusted, error) {
	what := fmt.Sprintf("device list of %q", name)
	wait := max(sequenceWaitEpochs*c.logCfg.interval(), minSequenceWait)
	deadline := c.now().Add(wait)
	for {
		resp, err := get(ctx, &parleyv1.GetDeviceListRequest{Username: name, KtFromSize: c.fromSize()})
		var srvErr *ServerError
		switch {
		case connect.CodeOf(err) == connect.CodeNotFound:
			return nil, nil, fmt.Errorf("%w: %q", ErrNoSuchUser, name)
		case errors.As(err, &srvErr) && srvErr.Code == connect.CodeUnavailable && c.now().Before(deadline):
			// The log has no epoch yet, or this node lags behind the
			// checkpoint we hold: ask again shortly.
			if err := c.pause(ctx); err != nil {
				return nil, nil, err
			}
			continue
		case err != nil:
			return nil, nil, err
		case len(resp.KtHead) == 0:
			// No proofs at all: a server whose log has not published yet,
			// or one that strips them. Only the former ends.
			if c.now().After(deadline) {
				return nil, nil, securityError(what, fmt.Errorf("%w: the server sent no key-transparency proofs for %v", ErrNotInLog, wait))
			}
			if err := c.pause(ctx); err != nil {
				return nil, nil, err
			}
			continue
		}
		t, err := c.verifyHead(what, resp.KtHead)
		if err != nil {
			return nil, nil, err
		}
		p, err := kt.UnmarshalSearchProof(resp.KtSearch)
		if err != nil {
			return nil, nil, securityError(what, &verify.Error{Kind: verify.BadProof, Label: name, Reason: "search proof", Err: err})
		}
		found, err := c.kt.VerifySearch(t, name, p)
		if errors.Is(err, verify.ErrNotFound) {
			// Verified absence: the account's first list is not
			// sequenced yet. The head verified, so keep it.
			if cerr := c.commitTrusted(ctx, t); cerr != nil {
				return nil, nil, cerr
			}
			if c.now().After(deadline) {
				return nil, nil, securityError(what, fmt.Errorf("%w after %v: the server hands out a device list it has not committed to", ErrNotInLog, wait))
			}
			if err := c.pause(ctx); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err != nil {
			return nil, nil, securityError(what, err)
		}
		signed, err := c.servedList(ctx, name, found, resp, get)
		if err != nil {
			return nil, nil, err
		}
		return signed, t, nil
	}
}

// pause waits half an epoch interval before a lookup asks again.
func (c *Client) pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(c.logCfg.interval() / 2):
		return nil
	}
}

// servedList checks the list the server served against the value the log
// committed for the account's greatest version.
func (c *Client) servedList(ctx context.Context, name string, found *verify.Found, resp *parleyv1.GetDeviceListResponse, get getDeviceList) (*identity.SignedDeviceList, error) {
	what := fmt.Sprintf("device list of %q", name)
	bad := func(reason string, err error) error {
		return securityError(what, &verify.Error{Kind: verify.KeySubstituted, Label: name, Version: found.Version, Reason: reason, Err: err})
	}
	if !bytes.Equal(resp.KtValue, found.Value) {
		return nil, bad("kt_value is not the value the search proof opens", nil)
	}
	committed, err := identity.ParseSignedDeviceList(found.Value)
	if err != nil {
		return nil, bad("the logged value is not a signed device list", err)
	}
	cl, err := committed.Verify(nil)
	if err != nil {
		return nil, bad("the logged device list", err)
	}
	if cl.Account != name || uint64(cl.Version) != uint64(found.Version)+1 {
		return nil, bad(fmt.Sprintf("the logged device list is version %d of %q", cl.Version, cl.Account), nil)
	}
	if bytes.Equal(resp.SignedDeviceList, found.Value) {
		return committed, nil
	}
	served, err := identity.ParseSignedDeviceList(resp.SignedDeviceList)
	if err != nil {
		return nil, securityError(what, err)
	}
	sl, err := served.Verify(nil)
	if err != nil {
		return nil, securityError(what, err)
	}
	if sl.Version <= cl.Version {
		// An older list than the log's newest, served as the current one
		// (a device removal or a key change hidden from the searcher).
		return nil, securityError(what, &verify.Error{Kind: verify.StaleLatest, Label: name, Version: found.Version,
			Reason: fmt.Sprintf("version %d served while the log holds version %d", sl.Version, cl.Version)})
	}
	// A successor published since the newest epoch: the same account key
	// and a chain from the logged version (docs/protocol.md §3.3).
	_, err = served.Verify(committed)
	var gap *identity.GapError
	if errors.As(err, &gap) {
		if gap.Got-gap.Have > maxUnsequenced {
			return nil, securityError(what, fmt.Errorf("%w: version %d served, the log holds %d", ErrNotInLog, gap.Got, gap.Have))
		}
		var run []*identity.SignedDeviceList
		for v := gap.Have + 1; v < gap.Got; v++ {
			r, err := get(ctx, &parleyv1.GetDeviceListRequest{Username: name, Version: v, KtFromSize: c.fromSize()})
			if err != nil {
				return nil, err
			}
			s, err := identity.ParseSignedDeviceList(r.SignedDeviceList)
			if err != nil {
				return nil, securityError(what, err)
			}
			run = append(run, s)
		}
		_, err = identity.VerifyChain(committed, append(run, served))
	}
	if err != nil {
		return nil, securityError(what, &verify.Error{Kind: verify.KeySubstituted, Label: name, Version: found.Version,
			Reason: "the served list is not a successor of the logged one", Err: err})
	}
	return served, nil
}

// ---- Own-account monitoring ----

// Limits of own-account monitoring.
const (
	// openCheckTimeout bounds the monitoring Open starts in the
	// background.
	openCheckTimeout = 30 * time.Second
	// maxCatchUp bounds the versions one MonitorAccount checks one by one
	// (a fixed-version search each) when more were logged since the last
	// check than one monitor proof opens; the next call goes on from
	// where it stopped.
	maxCatchUp = 4096
	// monitorTries bounds the tries of one monitoring call whose answer
	// arrived after a lookup moved this device's checkpoint on (its
	// consistency proof then starts from an older one); the last try
	// holds the client's lock across the call.
	monitorTries = 3
)

type monitorState struct {
	next   uint32 // the next KT version to monitor
	anchor []byte // the value of version next-1, nil when next is 0
}

func (c *Client) loadMonitor(ctx context.Context) (*monitorState, error) {
	raw, err := c.db.Setting(ctx, settingMonitor)
	if errors.Is(err, clientdb.ErrNotFound) {
		return &monitorState{}, nil
	} else if err != nil {
		return nil, err
	}
	if len(raw) < 4 || (binary.BigEndian.Uint32(raw) == 0) != (len(raw) == 4) {
		return nil, fmt.Errorf("client: stored monitor position: %w", clientdb.ErrCorrupt)
	}
	m := &monitorState{next: binary.BigEndian.Uint32(raw)}
	if len(raw) > 4 {
		m.anchor = bytes.Clone(raw[4:])
	}
	return m, nil
}

func (m *monitorState) marshal() []byte {
	return append(binary.BigEndian.AppendUint32(nil, m.next), m.anchor...)
}

// ownVersion reports whether value, logged as KT version v of this
// account, is a device list the account made: a device list of this
// account, signed by its account key, of version v+1, chained to prev
// (the value of version v−1; nil for v = 0). Versions made by any of the
// account's devices pass.
func (c *Client) ownVersion(prev []byte, v uint32, value []byte) bool {
	s, err := identity.ParseSignedDeviceList(value)
	if err != nil {
		return false
	}
	var l *identity.DeviceList
	if v == 0 {
		l, err = s.Verify(nil)
	} else {
		if prev == nil {
			return false
		}
		p, perr := identity.ParseSignedDeviceList(prev)
		if perr != nil {
			return false
		}
		l, err = s.Verify(p)
	}
	return err == nil && l.Account == c.username && l.Key.Equal(c.account.Public()) && uint64(l.Version) == uint64(v)+1
}

// ownVersions returns what this device can account for among the opened
// versions of its own label (ownVersion, each chained to the one before);
// anything else is reported by VerifyMonitor.
func (c *Client) ownVersions(m *monitorState, p *kt.MonitorProof) verify.Owner {
	ok := map[uint32][]byte{}
	prev := m.anchor
	for i, o := range p.Opened {
		v := p.From + uint32(i)
		if !c.ownVersion(prev, v, o.Value) {
			break
		}
		ok[v] = o.Value
		prev = o.Value
	}
	greatest := uint32(0)
	if m.next > 0 {
		greatest = m.next - 1
	}
	return verify.Owner{Greatest: greatest, Value: func(v uint32) ([]byte, bool) { b, found := ok[v]; return b, found }}
}

// MonitorAccount checks this account's own entries in the key-transparency
// log (docs/client.md §10.3): every version logged since the last check
// must be a device list this account made (signed by its account key and
// chained). A version it cannot account for — a device list the server, or
// someone with the server's help, showed others as this account's — is a
// *SecurityError wrapping a *verify.Error of kind UnexpectedVersion, whose
// Value is the logged list; a log that lost a version this device checked
// is one of kind HiddenVersion. Open runs it in the background (reporting
// a failure to Options.OnAlert) and Receive at every connection (as
// EventKeyTransparencyAlert). Before the account's first list is
// sequenced there is nothing to check.
//
// One monitor proof opens at most kt.MaxMonitorVersions versions; when
// more were logged since the last check (the device was offline), the
// older ones are checked one by one with fixed-version searches (at most
// maxCatchUp per call), then the newest with a monitor proof. The network
// calls run without holding the client's lock.
func (c *Client) MonitorAccount(ctx context.Context) error {
	if err := c.alive(); err != nil {
		return err
	}
	c.monitorMu.Lock()
	defer c.monitorMu.Unlock()
	caught := 0
	for {
		m, err := c.loadMonitor(ctx)
		if err != nil {
			return err
		}
		var (
			resp *parleyv1.MonitorResponse
			// window: the server refused the call as asking for more
			// versions than one proof opens (or from beyond the log's
			// greatest version).
			window bool
		)
		err = c.verifiedCall(func(from uint64) (err error) {
			resp, err = call(ctx, c, "monitoring this account", c.transparency.Monitor,
				&parleyv1.MonitorRequest{Username: c.username, FromSize: from, FromVersion: m.next})
			return err
		}, func(err error) error {
			switch {
			case connect.CodeOf(err) == connect.CodeNotFound && m.next == 0:
				return nil // not sequenced yet: nothing logged to check
			case connect.CodeOf(err) == connect.CodeInvalidArgument:
				window = true
				return err
			case err != nil:
				return err
			}
			return c.checkMonitor(ctx, m, resp)
		})
		if !window {
			return err
		}
		n, cerr := c.catchUp(ctx, m, maxCatchUp-caught)
		if cerr != nil {
			return cerr
		}
		if n == 0 {
			return err // not a window the catch-up explains
		}
		caught += n
	}
}

const monitorWhat = "this account in the key-transparency log"

// verifiedCall runs rpc with the size of the trusted checkpoint, without
// holding c.mu, then check (with rpc's error) under c.mu. If a lookup
// moved the trusted checkpoint on meanwhile, the answer, whose
// consistency proof starts from the older one, is dropped and asked
// again; the last try holds c.mu across the call.
func (c *Client) verifiedCall(rpc func(fromSize uint64) error, check func(error) error) error {
	for try := 1; ; try++ {
		locked := try >= monitorTries
		c.mu.Lock()
		snap := c.trusted
		if !locked {
			c.mu.Unlock()
		}
		err := rpc(sizeOf(snap))
		if !locked {
			c.mu.Lock()
			if c.trusted != snap {
				c.mu.Unlock()
				continue
			}
		}
		err = check(err)
		c.mu.Unlock()
		return err
	}
}

// sizeOf is the size of a trusted checkpoint (0 for none).
func sizeOf(t *verify.Trusted) uint64 {
	if t == nil {
		return 0
	}
	return t.Checkpoint.Size
}

// checkMonitor verifies a monitor answer from position m and moves the
// position on. Caller holds c.mu and c.monitorMu.
func (c *Client) checkMonitor(ctx context.Context, m *monitorState, resp *parleyv1.MonitorResponse) error {
	t, err := c.verifyHead(monitorWhat, resp.Head)
	if err != nil {
		return err
	}
	p, err := kt.UnmarshalMonitorProof(resp.Proof)
	if err != nil {
		return securityError(monitorWhat, &verify.Error{Kind: verify.BadProof, Label: c.username, Reason: "monitor proof", Err: err})
	}
	res, err := c.kt.VerifyMonitor(t, c.username, m.next, c.ownVersions(m, p), p)
	if err != nil {
		var ve *verify.Error
		if errors.As(err, &ve) && ve.Kind == verify.UnexpectedVersion {
			// The proof verified: keep the checkpoint, not the position,
			// so that the alert stays until someone acts on it.
			if cerr := c.commitTrusted(ctx, t); cerr != nil {
				return cerr
			}
		}
		return securityError(monitorWhat, err)
	}
	if err := c.commitTrusted(ctx, t); err != nil {
		return err
	}
	if len(p.Opened) > 0 {
		m = &monitorState{next: res.Greatest + 1, anchor: p.Opened[len(p.Opened)-1].Value}
		if err := c.db.SetSetting(ctx, settingMonitor, m.marshal()); err != nil {
			return err
		}
	}
	return nil
}

// catchUp checks, with one fixed-version search each, the versions from
// m.next on that one monitor proof cannot reach (all but the newest
// kt.MaxMonitorVersions), at most budget of them, and moves the position
// past each one it accounts for (ownVersion). It returns how many it
// checked: 0 when the log's greatest version is within reach. A version
// the account did not make is UnexpectedVersion, as in a monitor proof
// (the position stays before it); a log whose greatest version is below
// one this device checked before is HiddenVersion. Caller holds
// c.monitorMu.
func (c *Client) catchUp(ctx context.Context, m *monitorState, budget int) (int, error) {
	// The greatest version, from a greatest-version search.
	var resp *connect.Response[parleyv1.SearchResponse]
	search := func(fixed uint32) func(uint64) error {
		return func(from uint64) (err error) {
			resp, err = c.transparency.Search(ctx, connect.NewRequest(&parleyv1.SearchRequest{
				Username: c.username, FromSize: from, FixedVersionPlusOne: fixed}))
			if err != nil {
				return wrapRPC("searching this account in the key-transparency log", err)
			}
			return nil
		}
	}
	var greatest uint32
	err := c.verifiedCall(search(0), func(err error) error {
		if err != nil {
			return err
		}
		t, p, err := c.searchAnswer(resp.Msg.Head, resp.Msg.Proof, 0)
		if err != nil {
			return err
		}
		f, err := c.kt.VerifySearch(t, c.username, p)
		switch {
		case errors.Is(err, verify.ErrNotFound):
			if m.next > 0 {
				err = &verify.Error{Kind: verify.HiddenVersion, Label: c.username, Version: m.next - 1, Reason: "the log proves this account absent"}
			}
		case err == nil:
			greatest = f.Version
			if f.Version+1 < m.next {
				err = &verify.Error{Kind: verify.HiddenVersion, Label: c.username, Version: m.next - 1,
					Reason: fmt.Sprintf("the log's greatest version is %d", f.Version)}
			}
		}
		if err != nil {
			return securityError(monitorWhat, err)
		}
		return c.commitTrusted(ctx, t)
	})
	if err != nil {
		return 0, err
	}
	// Every version a monitor proof from it could not reach.
	checked := 0
	for v := m.next; v+kt.MaxMonitorVersions <= greatest && checked < budget; v++ {
		err := c.verifiedCall(search(v+1), func(err error) error {
			if err != nil {
				return err
			}
			t, p, err := c.searchAnswer(resp.Msg.Head, resp.Msg.Proof, v)
			if err != nil {
				return err
			}
			f, err := c.kt.VerifyFixed(t, c.username, v, p)
			if err != nil {
				return securityError(monitorWhat, err)
			}
			if err := c.commitTrusted(ctx, t); err != nil {
				return err
			}
			if !c.ownVersion(m.anchor, v, f.Value) {
				// The position stays before this version, so that the
				// alert stays until someone acts on it.
				return securityError(monitorWhat, &verify.Error{Kind: verify.UnexpectedVersion, Label: c.username, Version: v,
					Value: bytes.Clone(f.Value), Reason: "a version the owner did not publish"})
			}
			next := &monitorState{next: v + 1, anchor: f.Value}
			if err := c.db.SetSetting(ctx, settingMonitor, next.marshal()); err != nil {
				return err
			}
			m = next
			return nil
		})
		if err != nil {
			return checked, err
		}
		checked++
	}
	return checked, nil
}

// searchAnswer verifies the head of a search answer about this account
// and decodes its proof. Caller holds c.mu.
func (c *Client) searchAnswer(head, proof []byte, version uint32) (*verify.Trusted, *kt.SearchProof, error) {
	t, err := c.verifyHead(monitorWhat, head)
	if err != nil {
		return nil, nil, err
	}
	p, err := kt.UnmarshalSearchProof(proof)
	if err != nil {
		return nil, nil, securityError(monitorWhat, &verify.Error{Kind: verify.BadProof, Label: c.username, Version: version, Reason: "search proof", Err: err})
	}
	return t, p, nil
}

// ---- Checkpoints between people ----

// ErrLogFork is matched by the error of a contact's piggybacked checkpoint
// that is not one history with this device's view of the log.
var ErrLogFork = errors.New("client: the key-transparency log showed a contact a different history")

// checkPeerCheckpoint compares a checkpoint a contact piggybacked with this
// device's view (docs/client.md §10.4). It returns a *SecurityError whose
// verify.Error kind is Fork when the two cannot be one log; other failures
// (the network, a malformed note from the peer) are returned as they are
// and are not evidence of a fork.
func (c *Client) checkPeerCheckpoint(ctx context.Context, from string, peer []byte) error {
	what := fmt.Sprintf("checkpoint from %q", from)
	text, _, ok := bytes.Cut(peer, []byte("\n\n"))
	if !ok {
		return fmt.Errorf("client: %s: not a signed note", what)
	}
	pc, err := kt.ParseCheckpoint(string(text) + "\n")
	if err != nil {
		return fmt.Errorf("client: %s: %w", what, err)
	}
	if c.trusted != nil && pc.Size == c.trusted.Checkpoint.Size && pc.Root == c.trusted.Checkpoint.Root {
		return nil // the same view
	}
	if c.checked[pc] {
		return nil
	}
	for attempt := 0; ; attempt++ {
		// Bring this device's view up to date first.
		resp, err := c.transparency.GetHead(ctx, connect.NewRequest(&parleyv1.GetHeadRequest{FromSize: c.fromSize()}))
		if err != nil {
			return wrapRPC("fetching the log head", err)
		}
		t, err := c.verifyHead("key-transparency log", resp.Msg.Head)
		if err != nil {
			return err
		}
		if err := c.commitTrusted(ctx, t); err != nil {
			return err
		}
		var proof [][kt.HashSize]byte
		switch {
		case pc.Size > t.Checkpoint.Size:
			if attempt < 2 {
				time.Sleep(c.logCfg.interval())
				continue
			}
			return securityError(what, &verify.Error{Kind: verify.Fork,
				Reason: fmt.Sprintf("the log signed %d epochs for %q but serves this device %d", pc.Size, from, t.Checkpoint.Size)})
		case pc.Size < t.Checkpoint.Size:
			r, err := c.transparency.GetHead(ctx, connect.NewRequest(&parleyv1.GetHeadRequest{FromSize: pc.Size}))
			if err != nil {
				return wrapRPC("fetching a consistency proof", err)
			}
			h, err := kt.UnmarshalHead(r.Msg.Head)
			if err != nil {
				return securityError(what, &verify.Error{Kind: verify.BadProof, Reason: "head", Err: err})
			}
			cp, _, err := c.kt.VerifyCheckpoint(h.Checkpoint)
			if err != nil {
				return securityError(what, err)
			}
			if cp != t.Checkpoint {
				if attempt < 2 {
					continue // the log moved on meanwhile
				}
				return securityError(what, &verify.Error{Kind: verify.Fork, Reason: "the log's head keeps changing"})
			}
			proof = h.Consistency
		}
		if err := c.kt.VerifyPeerCheckpoint(t, peer, proof); err != nil {
			return securityError(what, err)
		}
		if len(c.checked) >= maxCheckedPeers {
			clear(c.checked)
		}
		c.checked[pc] = true
		return nil
	}
}

// isFork reports whether err is a fork between this device's view and a
// contact's.
func isFork(err error) bool {
	var ve *verify.Error
	return errors.As(err, &ve) && ve.Kind == verify.Fork
}
