package server

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// The interoperability test with litewitness (filippo.io/torchwood
// v0.6.1, cmd/litewitness), a C2SP tlog-witness written by someone else:
// built from the module cache, keyed through a dedicated ssh-agent, run on
// a loopback port. It needs the go command, ssh-agent, ssh-add and
// ssh-keygen (Debian: openssh-client); without them it skips, unless
// PARLEY_REQUIRE_SERVICES=1, when it fails.

const litewitnessModule = "filippo.io/torchwood@v0.6.1"

// needTool returns the path of a program or skips (fails under
// PARLEY_REQUIRE_SERVICES=1).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, "%s not found (install openssh-client for ssh-agent, ssh-add, ssh-keygen): %v", name, err)
	}
	return p
}

func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("PARLEY_REQUIRE_SERVICES") == "1" {
		t.Fatalf("PARLEY_REQUIRE_SERVICES=1 but the litewitness interop test cannot run: "+format, args...)
	}
	t.Skipf("litewitness interop test cannot run: "+format, args...)
}

// buildLitewitness builds cmd/litewitness from the module cache.
func buildLitewitness(t *testing.T, dir string) string {
	t.Helper()
	goCmd := needTool(t, "go")
	out, err := exec.Command(goCmd, "mod", "download", "-json", litewitnessModule).Output()
	if err != nil {
		unavailable(t, "go mod download %s: %v", litewitnessModule, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		unavailable(t, "go mod download %s: no directory in %s", litewitnessModule, out)
	}
	bin := filepath.Join(dir, "litewitness")
	build := exec.Command(goCmd, "build", "-o", bin, "./cmd/litewitness")
	build.Dir = mod.Dir
	if out, err := build.CombinedOutput(); err != nil {
		unavailable(t, "building litewitness: %v\n%s", err, out)
	}
	return bin
}

// litewitness is a running witness.
type litewitness struct {
	url, vkey, db string
}

func startLitewitness(t *testing.T, name string) *litewitness {
	t.Helper()
	agent, add, keygen := needTool(t, "ssh-agent"), needTool(t, "ssh-add"), needTool(t, "ssh-keygen")
	dir, err := os.MkdirTemp("", "lw") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := buildLitewitness(t, dir)

	key := filepath.Join(dir, "key")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	fp, err := exec.Command(keygen, "-l", "-E", "sha256", "-f", key+".pub").Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v", err)
	}
	fingerprint := strings.Fields(string(fp))[1]

	sock := filepath.Join(dir, "agent.sock")
	ag := exec.Command(agent, "-D", "-a", sock)
	if err := ag.Start(); err != nil {
		t.Fatalf("ssh-agent: %v", err)
	}
	t.Cleanup(func() { ag.Process.Kill(); ag.Wait() })
	eventually(t, "ssh-agent listens", func() bool { _, err := os.Stat(sock); return err == nil })
	addCmd := exec.Command(add, key)
	addCmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := addCmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	db := filepath.Join(dir, "litewitness.db")
	var stderr syncWriter
	lw := exec.Command(bin, "-name", name, "-db", db, "-ssh-agent", sock, "-key", fingerprint, "-listen", addr)
	lw.Stderr = &stderr
	if err := lw.Start(); err != nil {
		t.Fatalf("litewitness: %v", err)
	}
	t.Cleanup(func() { lw.Process.Kill(); lw.Wait() })
	vkeyRE := regexp.MustCompile(`vkey=(\S+)`)
	var vkey string
	eventually(t, "litewitness starts", func() bool {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			if m := vkeyRE.FindStringSubmatch(stderr.String()); m != nil {
				vkey = m[1]
				return true
			}
		}
		return false
	})
	return &litewitness{url: "http://" + addr, vkey: vkey, db: db}
}

// addLog configures a log in the witness's database, as witnessctl
// add-log and add-key do (witnessctl itself needs a module the proxy here
// does not serve): size 0, the empty tree's hash, and the log's key.
func (w *litewitness) addLog(t *testing.T, origin, vkey string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+w.db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// SHA-256 of the empty string, RFC 6962's hash of the empty tree.
	const emptyTree = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	if _, err := db.Exec("INSERT INTO log (origin, tree_size, tree_hash) VALUES (?, 0, ?)", origin, emptyTree); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO key (origin, key) VALUES (?, ?)", origin, vkey); err != nil {
		t.Fatal(err)
	}
}

// TestLitewitnessCosignsCheckpoints: litewitness, a tlog-witness nobody
// here wrote, cosigns the server's checkpoints as the log grows (each
// submission carrying the consistency proof from the witness's last
// size), and a client requiring that witness (1 of 1) verifies the heads
// and proofs it is served.
func TestLitewitnessCosignsCheckpoints(t *testing.T) {
	w := startLitewitness(t, "witness.test/litewitness")
	path := filepath.Join(t.TempDir(), "parleyd.db")
	cfg := testConfig()
	cfg.KTOrigin = "parley.test/kt"

	// Create the log's keys, and tell the witness about the log.
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, st, mem.New())
	if err != nil {
		t.Fatal(err)
	}
	w.addLog(t, cfg.KTOrigin, srv.kt.signer.Ed25519VerifierKey())
	st.Close()

	cfg.KTWitnesses = []Witness{{VKey: w.vkey, URL: w.url}}
	h := newHarnessAt(t, cfg, path)
	vc := ktConfig(t, h.kt)
	if vc.Witnesses.Threshold != 1 || len(vc.Witnesses.Witnesses) != 1 {
		t.Fatalf("GetConfig announces %d of %d witnesses, want 1 of 1", vc.Witnesses.Threshold, len(vc.Witnesses.Witnesses))
	}
	alice := h.register("alice", 2)
	first := waitSequenced(t, h.dir, vc, nil, "alice", 0)
	if !bytes.Contains(first.trusted.Note, []byte("— witness.test/litewitness ")) {
		t.Fatalf("the head carries no litewitness cosignature:\n%s", first.trusted.Note)
	}
	_, v2 := h.addPhone(alice)
	second := waitSequenced(t, h.dir, vc, first.trusted, "alice", 1)
	if !bytes.Equal(second.resp.KtValue, v2.Marshal()) || second.trusted.Checkpoint.Size <= first.trusted.Checkpoint.Size {
		t.Fatalf("second head: size %d after %d", second.trusted.Checkpoint.Size, first.trusted.Checkpoint.Size)
	}
	if n := auditAll(t, h.kt, vc, 100); n < second.trusted.Checkpoint.Size {
		t.Fatalf("audited %d epochs", n)
	}
	// The witness refuses a checkpoint it was not configured for: a
	// server whose origin the witness does not know never gets a head
	// served to clients that require the witness.
	other := testConfig()
	other.KTOrigin = "parley.test/unknown"
	other.KTWitnesses = cfg.KTWitnesses
	h2 := newHarness(t, other)
	time.Sleep(10 * other.KTEpochInterval)
	if _, err := h2.srv.ktView(); err == nil {
		t.Fatal("a head was served without the required cosignature")
	}
}

// syncWriter collects a process's output for concurrent reading.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
