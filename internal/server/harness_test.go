package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
	"github.com/parleyim/parley/internal/wire"
)

// harness runs a real server on a real SQLite file and the in-process bus,
// behind a loopback HTTP listener.
type harness struct {
	t     *testing.T
	cfg   Config
	close func() // stops everything; idempotent
	srv   *Server
	st    *sqlite.Store
	path  string // the SQLite file of st, when newHarness made it
	http  *httptest.Server
	auth  parleyv1connect.AuthServiceClient
	dir   parleyv1connect.DirectoryServiceClient
	relay parleyv1connect.RelayServiceClient
	kt    parleyv1connect.TransparencyServiceClient
}

// runTransparency runs the server's sequencer until the returned function
// is called, which waits for it to stop.
func runTransparency(srv *Server) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.RunTransparency(ctx)
	}()
	return func() { cancel(); <-done }
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	return newHarnessAt(t, cfg, filepath.Join(t.TempDir(), "parleyd.db"))
}

// newHarnessAt runs a server on the SQLite file at path.
func newHarnessAt(t *testing.T, cfg Config, path string) *harness {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b := mem.New()
	srv, err := New(cfg, st, b)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	h := &harness{t: t, cfg: cfg, srv: srv, st: st, path: path, http: hs}
	c := hs.Client()
	h.auth = parleyv1connect.NewAuthServiceClient(c, hs.URL)
	h.dir = parleyv1connect.NewDirectoryServiceClient(c, hs.URL)
	h.relay = parleyv1connect.NewRelayServiceClient(c, hs.URL)
	h.kt = parleyv1connect.NewTransparencyServiceClient(c, hs.URL)
	stopKT := runTransparency(srv)
	var once sync.Once
	h.close = func() {
		once.Do(func() {
			stopKT()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			hs.Close()
			if err := st.Close(); err != nil {
				t.Errorf("store close: %v", err)
			}
			_ = b.Close()
		})
	}
	t.Cleanup(h.close)
	return h
}

// restart stops the server and starts another on the same store file.
func (h *harness) restart() *harness {
	h.t.Helper()
	h.close()
	return newHarnessAt(h.t, h.cfg, h.path)
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Logger = discardLogger()
	cfg.KTEpochInterval = 20 * time.Millisecond
	return cfg
}

// account is a registered test account with one device.
type account struct {
	name    string
	key     *identity.AccountKey
	dev     *identity.DeviceKeys
	prekeys *prekey.Set
	list    *identity.SignedDeviceList
	token   string
}

func (a *account) id() store.DeviceID { return store.DeviceID(a.dev.Public().ID()) }

func upload(u *prekey.Upload) *parleyv1.PrekeyUpload {
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

// newAccount makes an account with one device, its prekeys (oneTime
// one-time keys of each kind) and its first signed device list, and the
// request that registers it. The harness and the benchmarks share it.
func newAccount(name string, oneTime int) (*account, *parleyv1.RegisterRequest, error) {
	a := &account{name: name, key: identity.GenerateAccountKey(), dev: identity.GenerateDeviceKeys()}
	set, up, err := prekey.NewSet(a.dev.Signing, oneTime)
	if err != nil {
		return nil, nil, err
	}
	a.prekeys = set
	a.list, err = identity.SignDeviceList(a.key, &identity.DeviceList{
		Account: name, Version: 1,
		Devices: []identity.DeviceEntry{{Device: a.dev.Public(), Name: "test", Added: 1}},
	})
	if err != nil {
		return nil, nil, err
	}
	return a, &parleyv1.RegisterRequest{
		Username: name, SignedDeviceList: a.list.Marshal(), Device: a.dev.Public().Marshal(), Prekeys: upload(up),
	}, nil
}

// logIn answers a challenge with a's device key and keeps the token.
func logIn(ctx context.Context, auth parleyv1connect.AuthServiceClient, a *account) error {
	id := a.id()
	ch, err := auth.Challenge(ctx, connect.NewRequest(&parleyv1.ChallengeRequest{DeviceId: id[:]}))
	if err != nil {
		return fmt.Errorf("challenge %s: %w", a.name, err)
	}
	sig := a.dev.Signing.Sign(primitives.LabelSigAuthChallenge, ch.Msg.Challenge)
	resp, err := auth.Authenticate(ctx, connect.NewRequest(&parleyv1.AuthenticateRequest{DeviceId: id[:], Challenge: ch.Msg.Challenge, Signature: sig}))
	if err != nil {
		return fmt.Errorf("authenticate %s: %w", a.name, err)
	}
	a.token = resp.Msg.Token
	return nil
}

func (h *harness) registerRequest(name string, oneTime int) (*account, *parleyv1.RegisterRequest) {
	h.t.Helper()
	a, req, err := newAccount(name, oneTime)
	if err != nil {
		h.t.Fatal(err)
	}
	return a, req
}

// register creates an account and logs its device in.
func (h *harness) register(name string, oneTime int) *account {
	h.t.Helper()
	a, req := h.registerRequest(name, oneTime)
	if _, err := h.dir.Register(context.Background(), connect.NewRequest(req)); err != nil {
		h.t.Fatalf("register %s: %v", name, err)
	}
	h.login(a)
	return a
}

func (h *harness) login(a *account) {
	h.t.Helper()
	if err := logIn(context.Background(), h.auth, a); err != nil {
		h.t.Fatal(err)
	}
}

// req wraps msg with a's token.
func req[T any](a *account, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	if a != nil {
		r.Header().Set("Authorization", "Bearer "+a.token)
	}
	return r
}

// envelope is a syntactically valid envelope; the server never looks
// inside its body.
func envelope(text string) []byte {
	e := &wire.Envelope{Type: wire.TypeRatchet, Body: []byte(text)}
	return e.Marshal()
}

func messageID(n byte) []byte {
	id := make([]byte, 16)
	id[0] = n
	primitives.Random(id[1:])
	return id
}

// bgStream is a server stream read in the background, so that a test can
// wait for its next item with a timeout.
type bgStream[T any] struct {
	items  chan *T
	done   chan error
	cancel context.CancelFunc
}

func readInBackground[T any](t *testing.T, s *connect.ServerStreamForClient[T], cancel context.CancelFunc) *bgStream[T] {
	b := &bgStream[T]{items: make(chan *T, 1024), done: make(chan error, 1), cancel: cancel}
	go func() {
		for s.Receive() {
			b.items <- s.Msg()
		}
		b.done <- s.Err()
		_ = s.Close()
	}()
	t.Cleanup(cancel)
	return b
}

// next returns the next item, failing if the stream ends or nothing comes
// within 10 s.
func (b *bgStream[T]) next(t *testing.T) *T {
	t.Helper()
	select {
	case it := <-b.items:
		return it
	case err := <-b.done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("nothing on the stream within 10s")
	}
	return nil
}

// stream is an open delivery stream.
type stream struct {
	*bgStream[parleyv1.ReceiveResponse]
}

func (h *harness) receive(a *account) *stream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := h.relay.Receive(ctx, req(a, &parleyv1.ReceiveRequest{}))
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	return &stream{readInBackground(h.t, s, cancel)}
}

func (s *stream) nextEnvelope(t *testing.T) *parleyv1.Envelope {
	t.Helper()
	for {
		e := s.next(t)
		if env := e.GetEnvelope(); env != nil {
			return env
		}
	}
}

func code(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return connect.CodeUnknown
}

var _ http.Handler = (*http.ServeMux)(nil)

// mismatchOf returns the MismatchedDevices detail of a refused send, or nil.
func mismatchOf(err error) *parleyv1.MismatchedDevices {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil
	}
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if m, ok := v.(*parleyv1.MismatchedDevices); ok {
				return m
			}
		}
	}
	return nil
}
