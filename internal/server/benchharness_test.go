package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// benchServer is harness for benchmarks: the same real server on a real
// store (a SQLite file, or a PostgreSQL database) behind a loopback TLS listener with HTTP/2, but each device
// gets its own connection, as separate phones would, instead of sharing
// one. It works with any testing.TB and fails on errors from other
// goroutines through returned errors, not t.Fatal.
type benchServer struct {
	tb  testing.TB
	srv *Server
	st  store.Store
	hs  *httptest.Server
}

// openStore opens the benchmark server's store on a fresh, empty location.
type openStore func(tb testing.TB) store.Store

// openSQLite is the default engine: a new SQLite file.
func openSQLite(tb testing.TB) store.Store {
	st, err := sqlite.Open(filepath.Join(tb.TempDir(), "parleyd.db"))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func newBenchServer(tb testing.TB, cfg Config, open openStore) *benchServer {
	tb.Helper()
	goroutines := runtime.NumGoroutine()
	// Registered first, so it runs last: after the server and every
	// connection are closed, nothing the benchmark started may be left.
	tb.Cleanup(func() { checkGoroutines(tb, goroutines) })
	st := open(tb)
	b := mem.New()
	srv, err := New(cfg, st, b)
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		hs.Close()
		if err := st.Close(); err != nil {
			tb.Errorf("store close: %v", err)
		}
		_ = b.Close()
	})
	return &benchServer{tb: tb, srv: srv, st: st, hs: hs}
}

// checkGoroutines fails tb if more goroutines run than before, once
// closed connections have had a moment to wind down.
func checkGoroutines(tb testing.TB, before int) {
	tb.Helper()
	var n int
	for range 500 {
		if n = runtime.NumGoroutine(); n <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	tb.Errorf("%d goroutines left running (%d before):\n%s", n, before, buf)
}

// benchDevice is a registered account with one device, logged in, with its
// own HTTP/2 connection to the server.
type benchDevice struct {
	*account
	// did is account.id(), which hashes the device's 2 KB public key,
	// computed once: the clients of a benchmark are not what it measures.
	did   store.DeviceID
	auth  parleyv1connect.AuthServiceClient
	dir   parleyv1connect.DirectoryServiceClient
	relay parleyv1connect.RelayServiceClient
}

// register creates an account with one device (and one one-time prekey of
// each kind) and logs it in. It is safe to call from several goroutines.
func (s *benchServer) register(name string) (*benchDevice, error) {
	tr := s.hs.Client().Transport.(*http.Transport).Clone()
	s.tb.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	a, reg, err := newAccount(name, 1)
	if err != nil {
		return nil, err
	}
	d := &benchDevice{
		account: a,
		did:     a.id(),
		auth:    parleyv1connect.NewAuthServiceClient(c, s.hs.URL),
		dir:     parleyv1connect.NewDirectoryServiceClient(c, s.hs.URL),
		relay:   parleyv1connect.NewRelayServiceClient(c, s.hs.URL),
	}
	ctx := context.Background()
	if _, err := d.dir.Register(ctx, connect.NewRequest(reg)); err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	if err := logIn(ctx, d.auth, a); err != nil {
		return nil, err
	}
	return d, nil
}

// benchStream is an open delivery stream, read by one goroutine at a time
// as the SDK reads it (client/receive.go): the envelope is handled on the
// goroutine that received it, without a hop through a channel.
type benchStream struct {
	rs     *connect.ServerStreamForClient[parleyv1.ReceiveResponse]
	cancel context.CancelFunc
}

func (s *benchServer) receive(d *benchDevice) (*benchStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	rs, err := d.relay.Receive(ctx, req(d.account, &parleyv1.ReceiveRequest{}))
	if err != nil {
		cancel()
		return nil, err
	}
	s.tb.Cleanup(cancel)
	return &benchStream{rs: rs, cancel: cancel}, nil
}

// next returns the stream's next envelope, or nil once the stream ended
// (then it closes it).
func (st *benchStream) next() *parleyv1.Envelope {
	for st.rs.Receive() {
		if e := st.rs.Msg().GetEnvelope(); e != nil {
			return e
		}
	}
	_ = st.rs.Close()
	return nil
}
