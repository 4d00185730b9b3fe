package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/parleyim/parley/internal/loadgen"
)

// binDir holds the parleyd binary built for this test process.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// parleyd builds cmd/parleyd once per test process (without the race
// detector: the nodes are the system under test, not the code under
// -race) and returns the binary's path.
func parleyd(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			binError = fmt.Errorf("the go command is needed to build parleyd: %v", err)
			return
		}
		binDir, binError = os.MkdirTemp("", "parley-chaos-")
		if binError != nil {
			return
		}
		binPath = filepath.Join(binDir, "parleyd")
		cmd := exec.Command(goTool, "build", "-o", binPath, "./cmd/parleyd")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			binError = fmt.Errorf("go build ./cmd/parleyd: %v\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// startNATS runs a NATS server in the test process on a free loopback
// port until the test ends.
func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	return ns
}

// node is one parleyd process on a fixed loopback port, so that it comes
// back at the same URL after a kill.
type node struct {
	t    *testing.T
	name string
	bin  string
	args []string
	dir  string
	url  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// nodeStart bounds how long a node may take to listen.
const nodeStart = 30 * time.Second

// startNode starts parleyd with args (plus its own --listen, --data and
// --ready-file) and stops it when the test ends.
func startNode(t *testing.T, name, bin string, args ...string) *node {
	t.Helper()
	n := &node{t: t, name: name, bin: bin, args: args, dir: t.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	n.url = "http://" + addr
	n.args = append(n.args, "--listen", addr, "--data", filepath.Join(n.dir, "data"), "--log-level", "warn")
	t.Cleanup(n.stop)
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// start starts the process and waits until it listens.
func (n *node) start() error {
	ready := filepath.Join(n.dir, "ready")
	os.Remove(ready)
	logf, err := os.OpenFile(filepath.Join(n.dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "--- start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(n.bin, append(append([]string(nil), n.args...), "--ready-file", ready)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	deadline := time.Now().Add(nodeStart)
	for {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start:\n%s", n.name, n.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen within %v:\n%s", n.name, nodeStart, n.logTail())
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (n *node) kill() {
	n.signal(syscall.SIGKILL)
}

// stop ends the process with SIGTERM (parleyd's graceful shutdown), or
// SIGKILL if it takes too long.
func (n *node) stop() {
	n.signal(syscall.SIGTERM)
}

func (n *node) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(40 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (n *node) logTail() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-20, 0):], "\n")
}

// logLines returns the lines of the node's log that contain substr.
func (n *node) logLines(substr string) string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "log"))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// healthy reports whether the node answers /healthz.
func (n *node) healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// checkNothingLost logs a load run's report and checks what every chaos
// test promises: every acknowledged envelope reached its device (exactly
// once after de-duplication, which the report counts), nothing arrived
// corrupt, and every device's queue was read to its end.
func checkNothingLost(t *testing.T, r *loadgen.Report) {
	t.Helper()
	var kinds []string
	for k, v := range r.Errors {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(kinds)
	t.Logf("%d messages acknowledged (%d envelopes), %d delivered, %d duplicates absorbed by de-duplication, "+
		"%d delivered of sends that failed, lost %d; p50 %.1f ms, p99 %.1f ms, max %.0f ms; errors: %s",
		r.Sent, r.SentEnvelopes, r.Delivered, r.Duplicates, r.Unacknowledged, r.Lost,
		r.Latency.P50, r.Latency.P99, r.Latency.Max, strings.Join(kinds, ", "))
	if r.Lost != 0 {
		t.Errorf("%d acknowledged envelopes never reached their device", r.Lost)
	}
	if r.Corrupt != 0 || r.SweepFailed != 0 || r.FailedSends != 0 {
		t.Errorf("corrupt %d, sweep failed for %d devices, %d sends given up", r.Corrupt, r.SweepFailed, r.FailedSends)
	}
	if r.Delivered != r.SentEnvelopes+r.Unacknowledged {
		t.Errorf("delivered %d, sent %d + %d unacknowledged", r.Delivered, r.SentEnvelopes, r.Unacknowledged)
	}
}
