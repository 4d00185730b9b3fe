package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
)

// user is a virtual account with its devices.
type user struct {
	name    string
	key     *identity.AccountKey
	devices []*device
}

// device is a virtual device. Its calls go to node (an index into the
// engine's URLs), which moves on to the next URL when a node fails.
type device struct {
	user  *user
	index int // in Engine.devices
	keys  *identity.DeviceKeys
	id    [16]byte
	conn  *conn
	nodes int // how many URLs
	node  atomic.Int32

	tokMu sync.Mutex
	token string

	// inbox records, per message id, whether the message's send was
	// acknowledged to its sender (stateSendAcked) and how often this
	// device received it (the rest of the bits). Guarded by mu.
	mu    sync.Mutex
	inbox map[[16]byte]uint32
}

const (
	stateSendAcked  = 1 << 31
	stateDeliveries = stateSendAcked - 1
)

func (d *device) clients() nodeClients { return d.conn.nodes[d.node.Load()] }

// failover moves the device to the next URL, unless another goroutine of
// the device already moved it away from from.
func (d *device) failover(from int32) {
	d.node.CompareAndSwap(from, (from+1)%int32(d.nodes))
}

// newUser generates the keys of an account with n devices. The prekey
// sets have no one-time prekeys: the engine never starts a session, and
// registration needs only the signed and last-resort prekeys.
func newUser(name string, n int) (*user, []*prekey.Upload, error) {
	u := &user{name: name, key: identity.GenerateAccountKey()}
	ups := make([]*prekey.Upload, n)
	for i := range n {
		keys := identity.GenerateDeviceKeys()
		_, up, err := prekey.NewSet(keys.Signing, 0)
		if err != nil {
			return nil, nil, err
		}
		ups[i] = up
		u.devices = append(u.devices, &device{user: u, keys: keys, id: keys.Public().ID(), inbox: map[[16]byte]uint32{}})
	}
	return u, ups, nil
}

func uploadProto(u *prekey.Upload) *parleyv1.PrekeyUpload {
	pb := &parleyv1.PrekeyUpload{}
	if u.Signed != nil {
		pb.SignedPrekey = u.Signed.Marshal(prekey.KindSignedX25519)
	}
	if u.LastResort != nil {
		pb.LastResortPrekey = u.LastResort.Marshal()
	}
	for i := range u.OneTime {
		pb.OneTimePrekeys = append(pb.OneTimePrekeys, u.OneTime[i].Marshal(prekey.KindOneTimeX25519))
	}
	for i := range u.PQ {
		pb.PqPrekeys = append(pb.PqPrekeys, u.PQ[i].Marshal())
	}
	return pb
}

// register creates the account with its first device, logs every device
// in, and publishes a second device-list version with the other devices,
// as linking would (docs/protocol.md §3.3).
func (u *user) register(ctx context.Context, ups []*prekey.Upload, ec *errorCounts) error {
	first := u.devices[0]
	now := uint64(time.Now().Unix())
	v1, err := identity.SignDeviceList(u.key, &identity.DeviceList{
		Account: u.name, Version: 1,
		Devices: []identity.DeviceEntry{{Device: first.keys.Public(), Name: "load 1", Added: now}},
	})
	if err != nil {
		return err
	}
	req := &parleyv1.RegisterRequest{
		Username: u.name, SignedDeviceList: v1.Marshal(), Device: first.keys.Public().Marshal(), Prekeys: uploadProto(ups[0]),
	}
	err = retry(ctx, first, "register", ec, func(ctx context.Context, c nodeClients) error {
		_, err := c.dir.Register(ctx, connect.NewRequest(req))
		if connect.CodeOf(err) == connect.CodeAlreadyExists {
			// A retry after an answer that was lost.
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("loadgen: register %s: %w", u.name, err)
	}
	if _, err := first.login(ctx, "", ec); err != nil {
		return err
	}
	if len(u.devices) > 1 {
		entries := make([]identity.DeviceEntry, len(u.devices))
		for i, d := range u.devices {
			entries[i] = identity.DeviceEntry{Device: d.keys.Public(), Name: fmt.Sprint("load ", i+1), Added: now}
		}
		slices.SortFunc(entries, func(a, b identity.DeviceEntry) int {
			ia, ib := a.Device.ID(), b.Device.ID()
			return bytes.Compare(ia[:], ib[:])
		})
		v2, err := identity.SignDeviceList(u.key, &identity.DeviceList{
			Account: u.name, Version: 2, Prev: v1.Hash(), Devices: entries,
		})
		if err != nil {
			return err
		}
		pub := &parleyv1.PublishDeviceListRequest{SignedDeviceList: v2.Marshal()}
		for i, d := range u.devices[1:] {
			pub.NewDevices = append(pub.NewDevices, &parleyv1.NewDevicePrekeys{DeviceId: d.id[:], Prekeys: uploadProto(ups[i+1])})
		}
		err = retryAuthed(ctx, first, "publish", ec, func(ctx context.Context, c nodeClients, tok string) error {
			_, err := c.dir.PublishDeviceList(ctx, authed(tok, pub))
			return err
		})
		if err != nil {
			return fmt.Errorf("loadgen: publish the device list of %s: %w", u.name, err)
		}
	}
	for _, d := range u.devices[1:] {
		if _, err := d.login(ctx, "", ec); err != nil {
			return err
		}
	}
	return nil
}

// login returns a token, authenticating again if there is none or the
// current one is stale (the one a call was refused with).
func (d *device) login(ctx context.Context, stale string, ec *errorCounts) (string, error) {
	d.tokMu.Lock()
	defer d.tokMu.Unlock()
	if d.token != "" && d.token != stale {
		return d.token, nil
	}
	if d.keys == nil {
		return "", fmt.Errorf("loadgen: log in %s again: its keys were dropped after the first login", d.user.name)
	}
	var tok string
	err := retry(ctx, d, "login", ec, func(ctx context.Context, c nodeClients) error {
		ch, err := c.auth.Challenge(ctx, connect.NewRequest(&parleyv1.ChallengeRequest{DeviceId: d.id[:]}))
		if err != nil {
			return err
		}
		sig := d.keys.Signing.Sign(primitives.LabelSigAuthChallenge, ch.Msg.Challenge)
		resp, err := c.auth.Authenticate(ctx, connect.NewRequest(&parleyv1.AuthenticateRequest{
			DeviceId: d.id[:], Challenge: ch.Msg.Challenge, Signature: sig,
		}))
		if err != nil {
			return err
		}
		tok = resp.Msg.Token
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("loadgen: log in %s: %w", d.user.name, err)
	}
	d.token = tok
	return tok, nil
}

func (d *device) currentToken() string {
	d.tokMu.Lock()
	defer d.tokMu.Unlock()
	return d.token
}

func authed[T any](tok string, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	r.Header().Set("Authorization", "Bearer "+tok)
	return r
}

// Retries of unary calls. A call that fails for a reason that may pass —
// a node down or restarting, a rate limit, the database restarting — is
// tried again, on the next node, after a backoff; calls are idempotent
// (sends by message id). Errors that say the request itself is wrong are
// not retried.
const (
	callTimeout  = 10 * time.Second
	callAttempts = 10
	retryFirst   = 50 * time.Millisecond
	retryMax     = 2 * time.Second
)

// permanent reports errors that no retry can fix.
func permanent(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeNotFound,
		connect.CodePermissionDenied, connect.CodeAlreadyExists, connect.CodeUnimplemented:
		return true
	}
	return errors.Is(err, context.Canceled)
}

// retryAfter is the delay a rate-limited call was told to wait, or 0.
func retryAfter(err error) time.Duration {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted {
		return 0
	}
	for _, det := range ce.Details() {
		if v, derr := det.Value(); derr == nil {
			if rl, ok := v.(*parleyv1.RateLimited); ok {
				return time.Duration(rl.RetryAfterMs) * time.Millisecond
			}
		}
	}
	return 0
}

// retry runs call on d's current node until it succeeds, fails
// permanently, ctx ends or callAttempts are used up, counting each failed
// attempt in ec under op. A refusal by a rate limit does not use up an
// attempt: the server said when to come back.
func retry(ctx context.Context, d *device, op string, ec *errorCounts, call func(context.Context, nodeClients) error) error {
	backoff := retryFirst
	var err error
	for attempt := 1; ; attempt++ {
		node := d.node.Load()
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err = call(cctx, d.conn.nodes[node])
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ec.add(op, err)
		ra := retryAfter(err)
		if ra > 0 {
			attempt--
		}
		if permanent(err) || attempt == callAttempts {
			return err
		}
		wait := backoff
		if ra > 0 {
			wait = ra
		} else if connect.CodeOf(err) != connect.CodeUnauthenticated {
			// The node may be down: try the next one.
			d.failover(node)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, retryMax)
	}
}

// retryAuthed is retry for calls that need a token: on Unauthenticated it
// logs in again before the next attempt.
func retryAuthed(ctx context.Context, d *device, op string, ec *errorCounts, call func(context.Context, nodeClients, string) error) error {
	return retry(ctx, d, op, ec, func(ctx context.Context, c nodeClients) error {
		tok := d.currentToken()
		err := call(ctx, c, tok)
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			if _, lerr := d.login(ctx, tok, ec); lerr != nil {
				return lerr
			}
		}
		return err
	})
}

// errorCounts counts failures by kind: the operation and the Connect code
// ("send: unavailable").
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (ec *errorCounts) add(op string, err error) {
	kind := op + ": " + connect.CodeOf(err).String()
	if errors.Is(err, ErrBadPayload) {
		kind = op + ": bad payload"
	}
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.m == nil {
		ec.m = map[string]int64{}
	}
	ec.m[kind]++
}

func (ec *errorCounts) snapshot() map[string]int64 {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	out := make(map[string]int64, len(ec.m))
	for k, v := range ec.m {
		out[k] = v
	}
	return out
}

func (ec *errorCounts) total() int64 {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	var n int64
	for _, v := range ec.m {
		n += v
	}
	return n
}
