package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/time/rate"

	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/loadgen"
	"github.com/parleyim/parley/internal/server"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// TestMain lets the scripts run parley-load as a real process: the test
// binary re-executes itself as the command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"parley-load": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/script/*.txtar, each against its own server.
func TestScripts(t *testing.T) {
	scripts, err := filepath.Glob("testdata/script/*.txtar")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts found: %v", err)
	}
	testscript.Run(t, testscript.Params{
		Dir:   "testdata/script",
		Setup: startServer,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"checkreport": cmdCheckReport,
			"exitcode":    cmdExitcode,
		},
	})
}

// startServer runs parleyd's server on SQLite in the script's work
// directory, served as parleyd serves loopback (HTTP/1 and h2c), with rate
// limits lifted, and sets $SERVER to its URL.
func startServer(env *testscript.Env) error {
	st, err := sqlite.Open(filepath.Join(env.WorkDir, "parleyd.db"))
	if err != nil {
		return err
	}
	b := mem.New()
	cfg := server.DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.DeviceRate, cfg.IPRate = rate.Inf, rate.Inf
	srv, err := server.New(cfg, st, b)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	env.Setenv("SERVER", "http://"+ln.Addr().String())
	env.Defer(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = hs.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			env.T().Log("server: ", err)
		}
		_ = st.Close()
		_ = b.Close()
	})
	return nil
}

// cmdCheckReport checks a JSON report for internal consistency:
//
//	checkreport report.json USERS DEVICES
//
// messages were sent and every acknowledged envelope was delivered once;
// acks match deliveries; the server's memory was read.
func cmdCheckReport(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: checkreport FILE USERS DEVICES")
	}
	var r loadgen.Report
	if err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &r); err != nil {
		ts.Fatalf("checkreport: %v", err)
	}
	check := func(ok bool, format string, a ...any) {
		if !ok {
			ts.Fatalf("checkreport: "+format, a...)
		}
	}
	check(r.Sent > 0, "nothing sent")
	check(r.Lost == 0 && r.Corrupt == 0, "lost %d, corrupt %d", r.Lost, r.Corrupt)
	check(r.Delivered == r.SentEnvelopes+r.Unacknowledged, "delivered %d, sent %d (+%d unacknowledged)", r.Delivered, r.SentEnvelopes, r.Unacknowledged)
	check(r.Acked == r.Delivered+r.Duplicates, "acked %d, delivered %d + duplicates %d", r.Acked, r.Delivered, r.Duplicates)
	check(itoa(r.Users) == args[1] && itoa(r.Devices) == args[2], "users %d, devices %d", r.Users, r.Devices)
	check(r.Latency.P50 > 0 && r.Latency.P99 >= r.Latency.P50, "latency %+v", r.Latency)
	check(r.SentPerSec > 0 && r.DeliveredPerSec > 0, "rates %v %v", r.SentPerSec, r.DeliveredPerSec)
	check(len(r.Servers) == 1 && r.Servers[0].End != nil && r.Servers[0].End.RSS > 0 && r.Servers[0].End.HeapInuse > 0, "server memory %+v", r.Servers)
}

// cmdExitcode runs a command and checks its exit status:
//
//	exitcode 2 parley-load run
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
