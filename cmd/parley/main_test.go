package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/server"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// TestMain lets the scripts run "parley" as a real process: the test
// binary re-executes itself as the command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"parley": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
		// parley-tee FILE ARGS... is parley ARGS... with its standard
		// output copied to FILE as it is written, so that a script can read
		// what a background parley printed before it ends (see await).
		"parley-tee": func() {
			if len(os.Args) < 2 {
				os.Exit(2)
			}
			f, err := os.Create(os.Args[1])
			if err != nil {
				os.Exit(2)
			}
			code := run(os.Args[2:], os.Stdin, io.MultiWriter(os.Stdout, f), os.Stderr)
			f.Close()
			os.Exit(code)
		},
	})
}

// TestScripts runs testdata/script/*.txtar, each against its own parleyd.
func TestScripts(t *testing.T) {
	scripts, err := filepath.Glob("testdata/script/*.txtar")
	if err != nil || len(scripts) == 0 {
		// A glob that silently matches nothing would pass every time.
		t.Fatalf("no scripts found: %v", err)
	}
	ageDir := buildAge(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", ageDir+string(os.PathListSeparator)+env.Getenv("PATH"))
			return startServer(env)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": cmdExitcode,
			"until":    cmdUntil,
			"await":    cmdAwait,
			"parleyd":  cmdParleyd,
			"sleep":    cmdSleep,
		},
	})
}

// buildAge builds the standard age command (filippo.io/age/cmd/age, a
// tool dependency in go.mod, from the module proxy), so that scripts can
// check a Parley backup with a tool no one here wrote. It returns the
// directory holding the binary.
func buildAge(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "age"), "filippo.io/age/cmd/age").CombinedOutput()
	if err != nil {
		t.Fatalf("building the age tool: %v\n%s", err, out)
	}
	return dir
}

// cmdSleep waits for a duration, for what only time makes happen (a
// schedule coming due):
//
//	sleep 1100ms
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		ts.Fatalf("sleep: %v", err)
	}
	time.Sleep(d)
}

// cmdExitcode runs a command and checks its exit status:
//
//	exitcode 2 parley send bob
//
// (exec only tells success from failure; the CLI promises codes.)
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

// cmdUntil runs a command again and again until its stdout matches a
// regexp, for a while:
//
//	until 'hello' parley history --home bob alice
//
// It waits for what a background process does, without sleeping a guess.
func cmdUntil(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: until REGEXP command [args...]")
	}
	re, err := regexp.Compile("(?m)" + args[0])
	if err != nil {
		ts.Fatalf("until: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ts.Exec(args[1], args[2:]...)
		if err == nil && re.MatchString(ts.ReadFile("stdout")) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("until: no match for %q after 20s (last error: %v)", args[0], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cmdAwait waits until a file (written by a background parley-tee)
// matches a regexp, and sets variables to its submatches:
//
//	await link.out '"code":"([^"]+)"' CODE
//
// so that a script can use what a running command printed.
func cmdAwait(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: await FILE REGEXP [VAR...]")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	if err != nil {
		ts.Fatalf("await: %v", err)
	}
	if len(args)-2 > re.NumSubexp() {
		ts.Fatalf("await: %d variables but %d submatches", len(args)-2, re.NumSubexp())
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(ts.MkAbs(args[0]))
		if m := re.FindSubmatch(data); m != nil {
			for i, v := range args[2:] {
				ts.Setenv(v, string(m[i+1]))
			}
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("await: no match for %q in %s after 20s:\n%s", args[1], args[0], data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// parleydKey finds a script's server in testscript's values.
type parleydKey struct{}

// parleyd is an in-process parleyd: the server's handler on a loopback
// listener, backed by SQLite in the script's work directory and the
// in-process bus (the engines parleyd uses by default). It can be stopped
// and started again on the same address, so that a script can roll the
// server's database back, as a lying or restored-from-backup server would.
type parleyd struct {
	dir     string
	ln      net.Listener
	hs      *http.Server
	served  chan error
	handler atomic.Pointer[http.Handler]

	srv    *server.Server
	st     *sqlite.Store
	bus    *mem.Bus
	stopKT func() // stops the key-transparency sequencer and waits
}

// startServer starts the script's parleyd and points PARLEY_SERVER at it.
func startServer(env *testscript.Env) error {
	d := &parleyd{dir: filepath.Join(env.WorkDir, ".parleyd")}
	if err := os.Mkdir(d.dir, 0o700); err != nil {
		return err
	}
	if err := d.start(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		d.stop()
		return err
	}
	d.ln = ln
	d.hs = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*d.handler.Load()).ServeHTTP(w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	d.served = make(chan error, 1)
	go func() { d.served <- d.hs.Serve(ln) }()
	env.Values[parleydKey{}] = d
	env.Setenv("PARLEY_SERVER", "http://"+ln.Addr().String())
	// Characters a script cannot type, for the terminal-injection tests.
	env.Setenv("ESC", "\x1b")
	env.Setenv("BIDI", "\u202e")
	env.Defer(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.stop()
		_ = d.hs.Shutdown(ctx)
		if err := <-d.served; !errors.Is(err, http.ErrServerClosed) {
			env.T().Log("parleyd: ", err)
		}
	})
	return nil
}

func (d *parleyd) start() error {
	st, err := sqlite.Open(filepath.Join(d.dir, "parleyd.db"))
	if err != nil {
		return err
	}
	b := mem.New()
	cfg := server.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.KTEpochInterval = 25 * time.Millisecond
	srv, err := server.New(cfg, st, b)
	if err != nil {
		st.Close()
		b.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.RunTransparency(ctx)
	}()
	d.srv, d.st, d.bus, d.stopKT = srv, st, b, func() { cancel(); <-done }
	h := srv.Handler()
	d.handler.Store(&h)
	return nil
}

func (d *parleyd) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.stopKT()
	_ = d.srv.Shutdown(ctx)
	_ = d.st.Close()
	_ = d.bus.Close()
}

// cmdParleyd controls the script's server:
//
//	parleyd snapshot NAME   copy its database aside
//	parleyd restore NAME    roll its database back to the copy
//
// Rolling back makes the server forget what happened since: accounts
// registered after the snapshot can be registered again by someone else,
// with other keys. Clients must notice.
//
//	parleyd rogue-device NAME   publish, as a lying operator could, a next
//	                            version of NAME's device list under a key
//	                            of its own, naming an extra device
func cmdParleyd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 || (args[0] != "snapshot" && args[0] != "restore" && args[0] != "rogue-device") {
		ts.Fatalf("usage: parleyd snapshot|restore|rogue-device NAME")
	}
	d := ts.Value(parleydKey{}).(*parleyd)
	if args[0] == "rogue-device" {
		ts.Check(d.rogueDevice(args[1]))
		return
	}
	d.stop()
	from, to := d.dir, filepath.Join(d.dir, args[1])
	if args[0] == "restore" {
		from, to = to, from
	}
	ts.Check(os.MkdirAll(to, 0o700))
	for _, suffix := range []string{"", "-wal", "-shm"} {
		name := "parleyd.db" + suffix
		_ = os.Remove(filepath.Join(to, name))
		data, err := os.ReadFile(filepath.Join(from, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		ts.Check(err)
		ts.Check(os.WriteFile(filepath.Join(to, name), data, 0o600))
	}
	ts.Check(d.start())
}

// rogueDevice writes the next version of name's device list straight into
// the store (which queues it for the key-transparency log): name's devices
// plus one of the operator's, signed by an account key the operator made,
// since it cannot sign with name's.
func (d *parleyd) rogueDevice(name string) error {
	ctx := context.Background()
	cur, err := d.st.DeviceList(ctx, name, 0)
	if err != nil {
		return err
	}
	prev, err := identity.ParseSignedDeviceList(cur.Signed)
	if err != nil {
		return err
	}
	l, err := prev.Verify(nil)
	if err != nil {
		return err
	}
	spy := identity.GenerateDeviceKeys().Public()
	now := time.Now()
	fake, err := identity.SignDeviceList(identity.GenerateAccountKey(), &identity.DeviceList{Account: name, Version: l.Version + 1, Prev: prev.Hash(),
		Devices: append(l.Devices, identity.DeviceEntry{Device: spy, Name: "tablet", Added: uint64(now.Unix())})})
	if err != nil {
		return err
	}
	var devs []store.Device
	for _, e := range append(l.Devices, identity.DeviceEntry{Device: spy}) {
		devs = append(devs, store.Device{ID: store.DeviceID(e.Device.ID()), Username: name, Public: e.Device.Marshal(), Added: now, LastSeen: now})
	}
	_, err = d.st.UpdateDeviceList(ctx, store.DeviceListUpdate{
		List: store.DeviceList{Username: name, Version: cur.Version + 1, Signed: fake.Marshal()}, Devices: devs,
	})
	return err
}
