package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
)

// start runs parleyd with args until the test ends and returns its URL.
func start(t *testing.T, args ...string) (url string, stdout *syncBuffer, done <-chan int) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuffer{}, &syncBuffer{}
	ch := make(chan int, 1)
	go func() { ch <- run(ctx, append(args, "--ready-file", ready), out, errb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-ch:
			if code != 0 {
				t.Errorf("parleyd exited %d: %s", code, errb.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("parleyd did not shut down")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			return string(b), out, ch
		}
		select {
		case code := <-ch:
			t.Fatalf("parleyd exited %d: %s", code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("parleyd did not start")
	return "", nil, nil
}

// TestDefaultsServeAConversation: parleyd on embedded defaults (plain HTTP
// on loopback, SQLite in its data directory) carries a conversation between
// two SDK clients, and says where it listens and keeps its data.
func TestDefaultsServeAConversation(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	url, out, _ := start(t, "--data", data, "--listen", "127.0.0.1:0")
	if !strings.Contains(out.String(), "listening on http://127.0.0.1:") || !strings.Contains(out.String(), data) {
		t.Fatalf("startup output: %q", out.String())
	}
	ctx := context.Background()
	alice, err := client.Register(ctx, t.TempDir(), url, "alice", client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, err := client.Register(ctx, t.TempDir(), url, "bob", client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if _, err := alice.Send(ctx, "bob", "over real parleyd"); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := bob.Receive(ctx, client.ReceiveOptions{}, func(e client.Event) error {
		if e.Kind == client.EventMessage {
			got = append(got, e.Message.Text)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "over real parleyd" {
		t.Fatalf("bob got %q", got)
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}
	if _, err := os.Stat(filepath.Join(data, "parleyd.db")); err != nil {
		t.Fatalf("no database in the data directory: %v", err)
	}
}

func TestPlainHTTPRefusedOffLoopback(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--data", t.TempDir(), "--listen", "0.0.0.0:0"}, &out, &errb)
	if code != exitError || !strings.Contains(errb.String(), "parleyd: error: refusing plain HTTP") || !strings.Contains(errb.String(), "parleyd: hint:") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestEnvironmentEquivalents(t *testing.T) {
	t.Setenv("PARLEYD_LISTEN", "127.0.0.1:0")
	t.Setenv("PARLEYD_REGISTRATION", "closed")
	t.Setenv("PARLEYD_DATA", filepath.Join(t.TempDir(), "d"))
	url, out, _ := start(t)
	if !strings.Contains(out.String(), "registration is closed") {
		t.Fatalf("output: %q", out.String())
	}
	_, err := client.Register(context.Background(), t.TempDir(), url, "alice", client.Options{Insecure: true})
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("registration on a closed server: %v", err)
	}
	var errb bytes.Buffer
	t.Setenv("PARLEYD_MAX_QUEUE", "lots")
	if code := run(context.Background(), nil, &bytes.Buffer{}, &errb); code != exitUsage || !strings.Contains(errb.String(), "PARLEYD_MAX_QUEUE") {
		t.Fatalf("bad environment value: exit %d, %q", code, errb.String())
	}
}

func TestInviteMode(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"invite", "--data", data}, &out, &errb); code != 0 {
		t.Fatalf("invite: exit %d: %s", code, errb.String())
	}
	token := strings.TrimSpace(out.String())
	if len(token) < 20 {
		t.Fatalf("invite token %q", token)
	}
	url, _, _ := start(t, "--data", data, "--listen", "127.0.0.1:0", "--registration", "invite")
	ctx := context.Background()
	if _, err := client.Register(ctx, t.TempDir(), url, "alice", client.Options{Insecure: true}); err == nil {
		t.Fatal("registered without an invite")
	}
	c, err := client.Register(ctx, t.TempDir(), url, "alice", client.Options{Insecure: true, Invite: token})
	if err != nil {
		t.Fatalf("with the invite: %v", err)
	}
	c.Close()
	if _, err := client.Register(ctx, t.TempDir(), url, "bob", client.Options{Insecure: true, Invite: token}); err == nil {
		t.Fatal("an invite was used twice")
	}
}

func TestBadFlagIsUsageError(t *testing.T) {
	var errb bytes.Buffer
	if code := run(context.Background(), []string{"--no-such-flag"}, &bytes.Buffer{}, &errb); code != exitUsage {
		t.Fatalf("exit %d", code)
	}
	if code := run(context.Background(), []string{"--registration", "sometimes"}, &bytes.Buffer{}, &errb); code != exitUsage {
		t.Fatalf("exit %d", code)
	}
}

// TestProfilesOnLoopbackOnly: --debug-listen serves Go's profiles on its own
// loopback listener, never on the API's, and refuses any other address.
func TestProfilesOnLoopbackOnly(t *testing.T) {
	url, out, _ := start(t, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--debug-listen", "127.0.0.1:0")
	_, rest, ok := strings.Cut(out.String(), "parleyd: profiles on ")
	if !ok {
		t.Fatalf("startup output names no profile address: %q", out.String())
	}
	profiles, _, _ := strings.Cut(rest, "\n")
	resp, err := http.Get(profiles + "heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile") {
		t.Fatalf("heap profile: %s %.100q", resp.Status, body)
	}
	resp, err = http.Get(url + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("the API listener serves profiles")
	}

	var o, errb bytes.Buffer
	code := run(context.Background(), []string{"--data", t.TempDir(), "--listen", "127.0.0.1:0", "--debug-listen", "0.0.0.0:0"}, &o, &errb)
	if code != exitError || !strings.Contains(errb.String(), "refusing to serve profiles on 0.0.0.0:0") || !strings.Contains(errb.String(), "parleyd: hint:") {
		t.Fatalf("--debug-listen off loopback: exit %d, stderr %q", code, errb.String())
	}
}
