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

// ownVersions returns what this device can account for among the opened
// versions of its own label: a version is its account's when it is a
// device list of this account, signed by this account's key, of the right
// version, chained to the version before it. Versions made by any of the
// account's devices pass; anything else is reported by VerifyMonitor.
func (c *Client) ownVersions(m *monitorState, p *kt.MonitorProof) verify.Owner {
	ok := map[uint32][]byte{}
	var prev *identity.SignedDeviceList
	if m.anchor != nil {
		prev, _ = identity.ParseSignedDeviceList(m.anchor)
	}
	for i, o := range p.Opened {
		v := p.From + uint32(i)
		s, err := identity.ParseSignedDeviceList(o.Value)
		if err != nil || (v > 0 && prev == nil) {
			break
		}
		var l *identity.DeviceList
		if v == 0 {
			l, err = s.Verify(nil)
		} else {
			l, err = s.Verify(prev)
		}
		if err != nil || l.Account != c.username || !l.Key.Equal(c.account.Public()) || uint64(l.Version) != uint64(v)+1 {
			break
		}
		ok[v] = o.Value
		prev = s
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
// Value is the logged list. Receive runs it and reports a failure as
// EventKeyTransparencyAlert. Before the account's first list is sequenced
// there is nothing to check.
func (c *Client) MonitorAccount(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.alive(); err != nil {
		return err
	}
	return c.monitor(ctx)
}

func (c *Client) monitor(ctx context.Context) error {
	const what = "this account in the key-transparency log"
	m, err := c.loadMonitor(ctx)
	if err != nil {
		return err
	}
	resp, err := call(ctx, c, "monitoring this account", c.transparency.Monitor,
		&parleyv1.MonitorRequest{Username: c.username, FromSize: c.fromSize(), FromVersion: m.next})
	if connect.CodeOf(err) == connect.CodeNotFound && m.next == 0 {
		return nil // not sequenced yet: nothing logged to check
	} else if err != nil {
		return err
	}
	t, err := c.verifyHead(what, resp.Head)
	if err != nil {
		return err
	}
	p, err := kt.UnmarshalMonitorProof(resp.Proof)
	if err != nil {
		return securityError(what, &verify.Error{Kind: verify.BadProof, Label: c.username, Reason: "monitor proof", Err: err})
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
		return securityError(what, err)
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
