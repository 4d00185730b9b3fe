package client

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/server"
	"github.com/parleyim/parley/internal/store/sqlite"
	_ "modernc.org/sqlite" // rawDB
)

// testServer runs parleyd's handler on a real SQLite file behind a
// loopback TLS listener.
type testServer struct {
	url     string
	dataDir string
	hs      *httptest.Server
	srv     *server.Server
	st      *sqlite.Store
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	return newTestServerLogging(t, io.Discard)
}

// newTestServerLogging is newTestServer with the server's log (debug
// level and up) written to w.
func newTestServerLogging(t testing.TB, w io.Writer) *testServer {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "parleyd.db"))
	if err != nil {
		t.Fatal(err)
	}
	b := mem.New()
	cfg := server.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.KTEpochInterval = 20 * time.Millisecond
	// The attack tests write device lists into the store directly, as an
	// operator who controls the database would (injectList); a server
	// that caches what it read would see them only NodeCacheTTL later.
	cfg.NodeCacheTTL = 0
	srv, err := server.New(cfg, st, b)
	if err != nil {
		t.Fatal(err)
	}
	ktCtx, stopKT := context.WithCancel(context.Background())
	ktDone := make(chan struct{})
	go func() {
		defer close(ktDone)
		srv.RunTransparency(ktCtx)
	}()
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	ts := &testServer{url: hs.URL, dataDir: dir, hs: hs, srv: srv, st: st}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopKT()
		<-ktDone
		_ = srv.Shutdown(ctx)
		hs.Close()
		_ = st.Close()
		_ = b.Close()
	})
	return ts
}

func (ts *testServer) register(t testing.TB, name string) *Client {
	t.Helper()
	c, err := Register(context.Background(), t.TempDir(), ts.url, name, Options{Insecure: true, HTTPClient: ts.hs.Client(), DeviceName: name + "-laptop"})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// drain receives until the queue is drained and returns the messages.
func drain(t *testing.T, c *Client) []*Message {
	t.Helper()
	var got []*Message
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.Receive(ctx, ReceiveOptions{}, func(e Event) error {
		switch e.Kind {
		case EventMessage:
			got = append(got, e.Message)
		case EventUndecryptable:
			t.Errorf("%s: undecryptable message from %s: %v", c.Username(), e.From, e.Err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s receive: %v", c.Username(), err)
	}
	return got
}

func TestConversation(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	for _, text := range []string{"hello bob", "are you there?"} {
		if _, err := alice.Send(ctx, "bob", text); err != nil {
			t.Fatal(err)
		}
	}
	got := drain(t, bob)
	if len(got) != 2 || got[0].Text != "hello bob" || got[1].Text != "are you there?" || got[0].From != "alice" {
		t.Fatalf("bob received %+v", got)
	}
	if _, err := bob.Send(ctx, "Alice", "hi alice"); err != nil {
		t.Fatal(err)
	}
	got = drain(t, alice)
	if len(got) != 1 || got[0].Text != "hi alice" || got[0].Conversation != "bob" {
		t.Fatalf("alice received %+v", got)
	}
	// Nothing more: a second drain is empty.
	if again := drain(t, bob); len(again) != 0 {
		t.Fatalf("redelivered: %+v", again)
	}
	h, err := alice.History(ctx, "bob", 10, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || !h[0].Outgoing || h[2].Outgoing || h[2].Text != "hi alice" {
		t.Fatalf("alice's history: %+v", h)
	}
	n1, _, err := alice.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	n2, _, err := bob.SafetyNumber(ctx, "alice")
	if err != nil || n1 != n2 {
		t.Fatalf("safety numbers differ: %q vs %q (%v)", n1, n2, err)
	}
}

// TestServerLearnsNothing: after a conversation, no file the server wrote
// contains a plaintext or any client's private key bytes.
func TestServerLearnsNothing(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	secrets := map[string][]byte{
		"plaintext 1": []byte("the eagle lands at midnight"),
		"plaintext 2": []byte("meet me by the old oak tree"),
	}
	if _, err := alice.Send(ctx, "bob", string(secrets["plaintext 1"])); err != nil {
		t.Fatal(err)
	}
	drain(t, bob)
	if _, err := bob.Send(ctx, "alice", string(secrets["plaintext 2"])); err != nil {
		t.Fatal(err)
	}
	drain(t, alice)
	for _, c := range []*Client{alice, bob} {
		secrets[c.Username()+" account key seed"] = c.account.Seed()
		secrets[c.Username()+" device signing seed"] = c.device.Signing.Seed()
		secrets[c.Username()+" device X25519 key"] = c.device.DH.Bytes()
		secrets[c.Username()+" prekey set"] = c.prekeys.Marshal()[8:40]
	}
	// Checkpoint the WAL into the database too, then scan both.
	_ = ts.st.Close()
	err := filepath.WalkDir(ts.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, s := range secrets {
			if bytes.Contains(data, s) {
				t.Errorf("%s contains %s", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCrashBetweenPersistAndAck: a device that stored a message but died
// before acknowledging it gets it again, and shows it once.
func TestCrashBetweenPersistAndAck(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	if _, err := alice.Send(ctx, "bob", "exactly once"); err != nil {
		t.Fatal(err)
	}
	// Persist without acknowledging, as if the process died before the ack.
	envs, err := ts.st.Fetch(ctx, [16]byte(bob.selfID), 0, 10)
	if err != nil || len(envs) != 1 {
		t.Fatalf("queue: %v, %d", err, len(envs))
	}
	e := envs[0]
	bob.mu.Lock()
	events, err := bob.processEnvelope(ctx, envelopeProto(&e))
	bob.mu.Unlock()
	if err != nil || len(events) != 1 || events[0].Kind != EventMessage {
		t.Fatalf("first processing: %v %+v", err, events)
	}
	// "Restart": reopen the home and receive; the redelivery is silent.
	home := bob.home
	bob.Close()
	bob2, err := Open(ctx, home, Options{HTTPClient: ts.hs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	if got := drain(t, bob2); len(got) != 0 {
		t.Fatalf("redelivery shown again: %+v", got)
	}
	h, _ := bob2.History(ctx, "alice", 10, time.Time{})
	if len(h) != 1 || h[0].Text != "exactly once" {
		t.Fatalf("history: %+v", h)
	}
}

// TestCrashBetweenReceiveAndPersist: a device that received a message but
// died before storing it gets it again and shows it then.
func TestCrashBetweenReceiveAndPersist(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	if _, err := alice.Send(ctx, "bob", "not lost"); err != nil {
		t.Fatal(err)
	}
	// Simulate a device that decrypted the message and died before its
	// store committed: a copy of bob's home processes the envelope (without
	// acking) and is thrown away, as the uncommitted transaction would be.
	copyHome := t.TempDir()
	copyDir(t, bob.home, copyHome)
	ghost, err := Open(ctx, copyHome, Options{HTTPClient: ts.hs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	envs, _ := ts.st.Fetch(ctx, [16]byte(bob.selfID), 0, 10)
	ghost.mu.Lock()
	if _, err := ghost.processEnvelope(ctx, envelopeProto(&envs[0])); err != nil {
		t.Fatal(err)
	}
	ghost.mu.Unlock()
	ghost.Close()
	// The real bob never stored it; the envelope is still queued.
	got := drain(t, bob)
	if len(got) != 1 || got[0].Text != "not lost" {
		t.Fatalf("after a crash before persisting: %+v", got)
	}
}

func TestSendToUnknownUser(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	if _, err := alice.Send(context.Background(), "nobody", "hi"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("send to unknown user: %v, want ErrNoSuchUser", err)
	}
}

func TestOpenWithPassphrase(t *testing.T) {
	ts := newTestServer(t)
	home := t.TempDir()
	ctx := context.Background()
	c, err := Register(ctx, home, ts.url, "carol", Options{Passphrase: []byte("correct horse"), HTTPClient: ts.hs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := Open(ctx, home, Options{Passphrase: []byte("wrong horse"), HTTPClient: ts.hs.Client()}); err == nil {
		t.Fatal("opened with the wrong passphrase")
	}
	c, err = Open(ctx, home, Options{Passphrase: []byte("correct horse"), HTTPClient: ts.hs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Username() != "carol" || c.Insecure() {
		t.Fatalf("reopened as %q insecure=%v", c.Username(), c.Insecure())
	}
}

// rawDB opens the server's database file as another process would.
func (ts *testServer) rawDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.dataDir, "parleyd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
