package loadgen

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/server"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// testServer is parleyd as cmd/parleyd wires it for one node: the real
// server on a real SQLite file and the in-process bus, served over plain
// HTTP/2 (h2c) on a loopback listener.
type testServer struct {
	url   string
	st    *sqlite.Store
	peers *peerSet
}

// peerSet records the client IP addresses the server saw API calls from.
type peerSet struct {
	mu  sync.Mutex
	ips map[string]bool
}

func (p *peerSet) add(addr string) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ips[host] = true
}

func (p *peerSet) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ips)
}

// unlimited is the server's default configuration with the rate limits
// lifted, for tests that check counts rather than limits.
func unlimited() server.Config {
	cfg := server.DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.DeviceRate, cfg.IPRate = rate.Inf, rate.Inf
	return cfg
}

// startServer runs a server until the test ends. wrap, if set, wraps the
// store the server uses (fault injection).
func startServer(t *testing.T, cfg server.Config, wrap func(store.Store) store.Store) *testServer {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "parleyd.db"))
	if err != nil {
		t.Fatal(err)
	}
	var s store.Store = st
	if wrap != nil {
		s = wrap(st)
	}
	b := mem.New()
	srv, err := server.New(cfg, s, b)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers := &peerSet{ips: map[string]bool{}}
	h := srv.Handler()
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/metrics" {
				peers.add(r.RemoteAddr)
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("http shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
		_ = b.Close()
	})
	return &testServer{url: "http://" + ln.Addr().String(), st: st, peers: peers}
}

// deadURL returns the URL of a loopback port nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}
