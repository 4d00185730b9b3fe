package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/server"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// TestMain lets the scripts run "parley" as a real process: the test
// binary re-executes itself as the command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"parley": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/script/*.txtar, each against its own parleyd.
func TestScripts(t *testing.T) {
	scripts, err := filepath.Glob("testdata/script/*.txtar")
	if err != nil || len(scripts) == 0 {
		// A glob that silently matches nothing would pass every time.
		t.Fatalf("no scripts found: %v", err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: false,
		Setup:               startServer,
	})
}

// startServer runs parleyd's handler in-process on a loopback listener,
// backed by SQLite in the script's work directory (the same engines parleyd
// uses by default), and points PARLEY_SERVER at it.
func startServer(env *testscript.Env) error {
	dir := filepath.Join(env.WorkDir, ".parleyd")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	st, err := sqlite.Open(filepath.Join(dir, "parleyd.db"))
	if err != nil {
		return err
	}
	b := mem.New()
	cfg := server.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg, st, b)
	if err != nil {
		st.Close()
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	env.Setenv("PARLEY_SERVER", "http://"+ln.Addr().String())
	env.Defer(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = hs.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			env.T().Log("parleyd: ", err)
		}
		_ = st.Close()
		_ = b.Close()
	})
	return nil
}
