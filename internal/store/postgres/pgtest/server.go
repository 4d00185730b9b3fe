package pgtest

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/primitives"
)

// Server is a throwaway PostgreSQL server that a test starts for itself,
// as scripts/test does for the whole run: initdb into a temporary
// directory, a free port on 127.0.0.1, fsync on, a random password. Tests
// that stop and start the database (to see parleyd survive a restart)
// need their own; the shared server must stay up for the others.
type Server struct {
	// DSN connects to the server's postgres database as its superuser.
	DSN string

	t    testing.TB
	bin  string // directory of initdb, pg_ctl, postgres
	dir  string // temporary directory: data/, log, socket
	port int
	// runAs is the unprivileged user the server runs as when the test
	// runs as root (initdb refuses root), or "".
	runAs string
}

// ServerUser is the system user a server runs as when the tests run as
// root; scripts/test creates it.
const ServerUser = "parleytest"

// startAttempts is how many free ports StartServer tries: another process
// may take one between the check and the server's bind.
const startAttempts = 5

// binDir finds the directory holding initdb and pg_ctl, as scripts/test
// does: on PATH, else the newest /usr/lib/postgresql/*/bin.
func binDir() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				return filepath.Dir(real)
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) < versionOf(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if isExec(filepath.Join(dirs[i], "initdb")) && isExec(filepath.Join(dirs[i], "pg_ctl")) {
			return dirs[i]
		}
	}
	return ""
}

func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// unavailable skips the test, or fails it when services are required.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s=1 but %s", RequireEnv, msg)
	}
	t.Skip(msg + " (run ./scripts/test)")
}

// StartServer starts a throwaway PostgreSQL server and stops it (and
// removes its files) when the test ends. Like every PostgreSQL test it
// runs only where the test services are set up (PARLEY_TEST_POSTGRES_DSN,
// see ServerDSN), although it does not use that server. Without
// PostgreSQL's server binaries, or as root without the user ServerUser, it
// skips the test — or fails it when PARLEY_REQUIRE_SERVICES=1.
func StartServer(t testing.TB) *Server {
	t.Helper()
	ServerDSN(t)
	bin := binDir()
	if bin == "" {
		unavailable(t, "PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
	}
	s := &Server{t: t, bin: bin}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(ServerUser); err != nil {
			unavailable(t, "running as root, and initdb refuses root, but there is no user %s to run it as", ServerUser)
		}
		s.runAs = ServerUser
	}
	dir, err := os.MkdirTemp("", "parley-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() {
		s.stop("immediate")
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var pw [16]byte
	primitives.Random(pw[:])
	password := hex.EncodeToString(pw[:])
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.chown(dir, pwfile); err != nil {
		t.Fatal(err)
	}
	out, err := s.command("initdb", "-D", s.data(), "-U", "parley", "--pwfile="+pwfile,
		"--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "--no-locale", "-E", "UTF8").CombinedOutput()
	os.Remove(pwfile)
	if err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	for attempt := 1; ; attempt++ {
		s.port = freePort(t)
		err := s.Start()
		if err == nil {
			break
		}
		if attempt == startAttempts {
			t.Fatalf("PostgreSQL did not start: %v", err)
		}
	}
	s.DSN = fmt.Sprintf("host=127.0.0.1 port=%d user=parley password=%s dbname=postgres sslmode=disable", s.port, password)
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// command runs one of the server's programs, as ServerUser when root.
func (s *Server) command(prog string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, prog)
	if s.runAs != "" {
		return exec.Command("runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (s *Server) chown(paths ...string) error {
	if s.runAs == "" {
		return nil
	}
	u, err := user.Lookup(s.runAs)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start starts the server (again) on its port and waits until it accepts
// connections.
func (s *Server) Start() error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories='%s' -c fsync=on -c max_connections=200", s.port, s.dir)
	out, err := s.command("pg_ctl", "start", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "-s", "-o", opts).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, lastLines(string(log), 10))
	}
	return nil
}

// Stop stops the server with pg_ctl's mode "fast" (roll back open
// transactions, disconnect clients, shut down cleanly) or "immediate"
// (abort, recover from the WAL at the next start).
func (s *Server) Stop(mode string) error {
	out, err := s.command("pg_ctl", "stop", "-D", s.data(), "-m", mode, "-w", "-t", "60", "-s").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	return nil
}

func (s *Server) stop(mode string) {
	_ = s.command("pg_ctl", "stop", "-D", s.data(), "-m", mode, "-w", "-t", "60", "-s").Run()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// NewDatabase creates an empty database on s, dropped when the test
// ends, and returns its DSN.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabaseOn(t, s.DSN)
}

// WaitReady waits until the server accepts a query, at most timeout.
func (s *Server) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.DSN)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
