// Package client is Parley's Go SDK: one device of one account, with its
// encrypted home directory, talking to a parleyd server (docs/client.md).
//
// A Client registers an account or opens an existing home, sends messages
// to every device of the recipient and to the sender's own other devices,
// receives and decrypts its queue, and keeps history, contacts and sessions
// in a local store sealed under a passphrase.
//
// Everything the server hands out is verified here: device lists are
// accepted only when signed by the account key and chained to the last
// version this device saw; prekey bundles only when signed by a device in
// such a list. A server that lies produces an error matching ErrSecurity,
// distinct from network errors.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/username"
)

// DatabaseFile is the store's file name inside a home directory.
const DatabaseFile = "parley.db"

// Prekey policy.
const (
	// InitialPrekeys is how many one-time prekeys of each kind a new
	// device publishes.
	InitialPrekeys = 100
	// ReplenishTo is how many one-time prekeys of each kind a device tops
	// up to when the server says it runs low.
	ReplenishTo = 100
	// RotateLastResortAfter is how many handshakes against the
	// last-resort prekey a device accepts before replacing it, well below
	// prekey.MaxLastResortUses, so that its replay record never overflows.
	RotateLastResortAfter = prekey.MaxLastResortUses / 2
)

// Options configure Register and Open.
type Options struct {
	// Passphrase protects the local store (Argon2id, docs/client.md §2).
	Passphrase []byte
	// Insecure creates a store without a passphrase; anyone who copies
	// the home directory can read it. Only for Register.
	Insecure bool
	// DeviceName names this device in the account's device list.
	DeviceName string
	// Invite is the invite token, for servers that require one. Only for
	// Register.
	Invite string
	// HTTPClient talks to the server; http.DefaultClient if nil.
	HTTPClient *http.Client
	// Logger receives debug logs; nothing secret is ever logged.
	Logger *slog.Logger
	// LogConfig pins the server's key-transparency log, obtained out of
	// band, when a new home is created (Register, StartLink, Restore,
	// StartRecovery). Without it the client pins what the server says
	// (trust on first use). Open ignores it: the home's pin stays.
	LogConfig *LogConfig
	// OnAlert, if set, is called with the EventKeyTransparencyAlert that
	// the check of this account Open starts finds (docs/client.md §10.3),
	// from another goroutine, before Open's caller may have called
	// anything else. Receive reports the same alert again.
	OnAlert func(Event)
}

// Client is one device of one account. Its methods are safe for
// concurrent use; state-changing work is serialised.
type Client struct {
	// mu serialises everything that reads and writes sessions, prekeys and
	// device lists: decrypting and encrypting are read-modify-write cycles
	// on the ratchet state, and the one-time prekey find → decrypt →
	// consume sequence must not run twice at once for one message.
	mu sync.Mutex

	db       *clientdb.DB
	home     string
	username string
	server   string
	account  *identity.AccountKey
	device   *identity.DeviceKeys
	self     *identity.DevicePublic
	selfID   identity.DeviceID
	prekeys  *prekey.Set
	lists    map[string]*identity.DeviceList // verified device lists by account, under mu
	// changes, when set (by processEnvelope, under mu), collects the
	// device-change events of contacts' lists accepted meanwhile, so that
	// Receive reports them.
	changes *[]Event

	// gone is set once this device's local store is wiped (removal proven,
	// or the account deleted); every later call returns ErrDeviceRemoved.
	gone     atomic.Bool
	wipeOnce sync.Once
	wipeErr  error

	auth   parleyv1connect.AuthServiceClient
	dir    parleyv1connect.DirectoryServiceClient
	relay  parleyv1connect.RelayServiceClient
	prov   parleyv1connect.ProvisioningServiceClient
	backup parleyv1connect.BackupServiceClient

	transparency parleyv1connect.TransparencyServiceClient
	// Key transparency, under mu: the pinned log, its verifier, the newest
	// verified checkpoint, and the contacts' checkpoints already found
	// consistent with it.
	logCfg  *LogConfig
	kt      *verify.Config
	trusted *verify.Trusted
	checked map[kt.Checkpoint]bool

	// monitorMu serialises own-account monitoring (MonitorAccount), the
	// only writer of its position; taken before mu.
	monitorMu sync.Mutex
	// openCheck is the monitoring Open started (nil for a client that
	// was not opened).
	openCheck *openCheck

	tokenMu  sync.Mutex
	token    string
	tokenExp time.Time

	log *slog.Logger
	now func() time.Time
}

func (o *Options) httpClient() *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return http.DefaultClient
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// NormalizeServerURL checks a server URL: https, or http only to a
// loopback address (the server refuses plain HTTP elsewhere too).
func NormalizeServerURL(raw string) (string, error) {
	u := strings.TrimRight(strings.TrimSpace(raw), "/")
	switch {
	case strings.HasPrefix(u, "https://"):
	case strings.HasPrefix(u, "http://127.") || strings.HasPrefix(u, "http://localhost") || strings.HasPrefix(u, "http://[::1]"):
	default:
		return "", fmt.Errorf("client: server URL %q must start with https:// (or http:// on a loopback address)", raw)
	}
	return u, nil
}

func (c *Client) connect(server string, hc *http.Client) {
	c.server = server
	c.auth = parleyv1connect.NewAuthServiceClient(hc, server)
	c.dir = parleyv1connect.NewDirectoryServiceClient(hc, server)
	c.relay = parleyv1connect.NewRelayServiceClient(hc, server)
	c.prov = parleyv1connect.NewProvisioningServiceClient(hc, server)
	c.backup = parleyv1connect.NewBackupServiceClient(hc, server)
	c.transparency = parleyv1connect.NewTransparencyServiceClient(hc, server)
}

// Register creates an account with this device as its first device, in a
// new home directory.
func Register(ctx context.Context, home, server, name string, opts Options) (*Client, error) {
	name, err := username.Normalize(name)
	if err != nil {
		return nil, err
	}
	c, fail, err := newHome(ctx, home, server, name, opts)
	if err != nil {
		return nil, err
	}
	db := c.db

	c.account = identity.GenerateAccountKey()
	c.device = identity.GenerateDeviceKeys()
	c.self = c.device.Public()
	c.selfID = c.self.ID()
	set, up, err := prekey.NewSet(c.device.Signing, InitialPrekeys)
	if err != nil {
		return fail(err)
	}
	c.prekeys = set
	devName := opts.DeviceName
	if devName == "" {
		devName = defaultDeviceName()
	}
	list, err := identity.SignDeviceList(c.account, &identity.DeviceList{
		Account: name, Version: 1,
		Devices: []identity.DeviceEntry{{Device: c.self, Name: devName, Added: uint64(c.now().Unix())}},
	})
	if err != nil {
		return fail(err)
	}
	_, err = c.dir.Register(ctx, connect.NewRequest(&parleyv1.RegisterRequest{
		Username: name, Invite: opts.Invite, SignedDeviceList: list.Marshal(), Device: c.self.Marshal(), Prekeys: uploadProto(up),
	}))
	if connect.CodeOf(err) == connect.CodeAlreadyExists {
		return fail(fmt.Errorf("%w: %q", ErrUsernameTaken, name))
	} else if err != nil {
		return fail(wrapRPC("register", err))
	}
	if err := db.PutIdentity(ctx, &clientdb.Identity{
		Username: name, ServerURL: c.server, AccountKeySeed: c.account.Seed(),
		DeviceKeys: c.device.Marshal(), Prekeys: set.Marshal(), DeviceList: list.Marshal(),
	}); err != nil {
		// The account exists on the server but this device cannot
		// remember it; say so rather than deleting the evidence.
		db.Close()
		return nil, fmt.Errorf("client: registered %q but could not save the keys locally: %w", name, err)
	}
	return c, nil
}

// newHome creates the store of a new home and a client on it. fail closes
// and deletes the store, so that a failed setup leaves nothing behind and
// the user can simply retry.
//
// The new home pins the server's key-transparency log (opts.LogConfig, or
// the server's answer to GetConfig).
func newHome(ctx context.Context, home, server, name string, opts Options) (c *Client, fail func(error) (*Client, error), err error) {
	server, err = NormalizeServerURL(server)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, nil, fmt.Errorf("client: creating home: %w", err)
	}
	path := filepath.Join(home, DatabaseFile)
	db, err := clientdb.Create(path, opts.Passphrase, clientdb.Options{Insecure: opts.Insecure})
	if err != nil {
		return nil, nil, err
	}
	c = newClient(db, home, opts)
	c.username = name
	c.connect(server, opts.httpClient())
	fail = func(err error) (*Client, error) {
		db.Close()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(path + suffix)
		}
		return nil, err
	}
	if err := c.pinLog(ctx, opts, opts.httpClient()); err != nil {
		_, err = fail(err)
		return nil, nil, err
	}
	return c, fail, nil
}

func defaultDeviceName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		if len(h) > identity.MaxDeviceNameSize {
			h = h[:identity.MaxDeviceNameSize]
		}
		return h
	}
	return "device"
}

// Open opens an existing home directory.
func Open(ctx context.Context, home string, opts Options) (*Client, error) {
	path := filepath.Join(home, DatabaseFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no parley home at %s", ErrNotRegistered, home)
	}
	db, err := clientdb.Open(path, opts.Passphrase)
	if err != nil {
		return nil, err
	}
	c := newClient(db, home, opts)
	if err := c.load(ctx, opts.httpClient()); err != nil {
		db.Close()
		return nil, err
	}
	c.startOpenCheck(opts.OnAlert)
	return c, nil
}

// openCheck is the monitoring of the own account that Open starts.
type openCheck struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

// startOpenCheck runs MonitorAccount in the background, so that a device
// that was offline learns at once (not only at its next Receive) whether
// its account gained a device list it did not make. A network failure is
// not reported (it is no evidence of anything; Receive checks again); a
// security error goes to onAlert as EventKeyTransparencyAlert.
func (c *Client) startOpenCheck(onAlert func(Event)) {
	ctx, cancel := context.WithTimeout(context.Background(), openCheckTimeout)
	oc := &openCheck{cancel: cancel, done: make(chan struct{})}
	c.openCheck = oc
	go func() {
		defer close(oc.done)
		defer cancel()
		err := c.MonitorAccount(ctx)
		oc.err = err
		switch {
		case isSecurity(err):
			if onAlert != nil {
				onAlert(Event{Kind: EventKeyTransparencyAlert, From: c.username, Err: err})
			}
		case err != nil:
			c.log.Debug("monitoring this account at open", "err", err)
		}
	}()
}

// OpenCheck waits until the check of this account in the key-transparency
// log that Open started has ended (or ctx ends) and returns its result:
// nil, a *SecurityError (the error Options.OnAlert received), or another
// error such as a network failure, which is no security error. For a
// client made otherwise than by Open it returns nil.
func (c *Client) OpenCheck(ctx context.Context) error {
	oc := c.openCheck
	if oc == nil {
		return nil
	}
	select {
	case <-oc.done:
		return oc.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newClient(db *clientdb.DB, home string, opts Options) *Client {
	return &Client{db: db, home: home, log: opts.logger(), now: time.Now, lists: map[string]*identity.DeviceList{},
		checked: map[kt.Checkpoint]bool{}}
}

func (c *Client) load(ctx context.Context, hc *http.Client) error {
	id, err := c.db.Identity(ctx)
	if errors.Is(err, clientdb.ErrNotFound) {
		return ErrNotRegistered
	} else if err != nil {
		return err
	}
	if c.account, err = identity.NewAccountKey(id.AccountKeySeed); err != nil {
		return fmt.Errorf("client: stored account key: %w", err)
	}
	if c.device, err = identity.UnmarshalDeviceKeys(id.DeviceKeys); err != nil {
		return fmt.Errorf("client: stored device keys: %w", err)
	}
	if c.prekeys, err = prekey.UnmarshalSet(id.Prekeys); err != nil {
		return fmt.Errorf("client: stored prekeys: %w", err)
	}
	c.username = id.Username
	c.self = c.device.Public()
	c.selfID = c.self.ID()
	c.token, c.tokenExp = id.Token, id.TokenExpiry
	c.connect(id.ServerURL, hc)
	return c.loadLog(ctx)
}

// Close stops the check Open started and closes the local store.
func (c *Client) Close() error {
	if oc := c.openCheck; oc != nil {
		oc.cancel()
		<-oc.done
	}
	return c.db.Close()
}

// alive returns ErrDeviceRemoved once the local store has been wiped.
func (c *Client) alive() error {
	if c.gone.Load() {
		return ErrDeviceRemoved
	}
	return nil
}

// Username returns the account's name.
func (c *Client) Username() string { return c.username }

// DeviceID returns this device's id.
func (c *Client) DeviceID() identity.DeviceID { return c.selfID }

// Server returns the server URL.
func (c *Client) Server() string { return c.server }

// Insecure reports whether the local store has no passphrase.
func (c *Client) Insecure() bool { return c.db.Insecure() }

// login proves possession of the device key and stores the token.
func (c *Client) login(ctx context.Context) (string, error) {
	if c.gone.Load() {
		return "", ErrDeviceRemoved
	}
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token != "" && c.now().Add(time.Minute).Before(c.tokenExp) {
		return c.token, nil
	}
	ch, err := c.auth.Challenge(ctx, connect.NewRequest(&parleyv1.ChallengeRequest{DeviceId: c.selfID[:]}))
	if err != nil {
		return "", wrapRPC("challenge", err)
	}
	sig := c.device.Signing.Sign(primitives.LabelSigAuthChallenge, ch.Msg.Challenge)
	resp, err := c.auth.Authenticate(ctx, connect.NewRequest(&parleyv1.AuthenticateRequest{
		DeviceId: c.selfID[:], Challenge: ch.Msg.Challenge, Signature: sig,
	}))
	if connect.CodeOf(err) == connect.CodeUnauthenticated {
		// The challenge was fresh and the signature ours: the server does
		// not know this device. Removed? Only a signed list can say so.
		if rerr := c.confirmRemoval(ctx); rerr != nil {
			return "", rerr
		}
	}
	if err != nil {
		return "", wrapRPC("authenticate", err)
	}
	c.token, c.tokenExp = resp.Msg.Token, time.Unix(resp.Msg.ExpiresUnix, 0)
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.SetToken(c.token, c.tokenExp) }); err != nil {
		c.log.Debug("saving token", "err", err)
	}
	return c.token, nil
}

func (c *Client) forgetToken(stale string) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token == stale {
		c.token = ""
	}
}

// call makes an authenticated unary call, logging in first if needed and
// once more if the server refuses the token (it expired or the server's key
// changed).
func call[Req, Res any](ctx context.Context, c *Client, what string, fn func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), msg *Req) (*Res, error) {
	for attempt := 0; ; attempt++ {
		tok, err := c.login(ctx)
		if err != nil {
			return nil, err
		}
		req := connect.NewRequest(msg)
		req.Header().Set("Authorization", "Bearer "+tok)
		resp, err := fn(ctx, req)
		if err == nil {
			return resp.Msg, nil
		}
		if connect.CodeOf(err) == connect.CodeUnauthenticated && attempt == 0 {
			c.forgetToken(tok)
			continue
		}
		return nil, wrapRPC(what, err)
	}
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
