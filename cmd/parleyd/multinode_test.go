package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
)

// TestTwoNodesShareState: two parleyd processes' worth of servers on one
// PostgreSQL database and one NATS server. A client on node A and a client
// on node B talk; a stream on B wakes promptly for a send through A.
func TestTwoNodesShareState(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	t.Setenv("PARLEYD_POSTGRES", dsn)
	t.Setenv("PARLEYD_NATS", ns.ClientURL())
	urlA, outA, _ := start(t, "--data", filepath.Join(t.TempDir(), "a"), "--listen", "127.0.0.1:0")
	urlB, _, _ := start(t, "--data", filepath.Join(t.TempDir(), "b"), "--listen", "127.0.0.1:0")
	if want := "PostgreSQL"; !strings.Contains(outA.String(), want) {
		t.Fatalf("node A does not say it uses %s: %q", want, outA.String())
	}

	ctx := context.Background()
	alice, err := client.Register(ctx, t.TempDir(), urlA, "alice", client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, err := client.Register(ctx, t.TempDir(), urlB, "bob", client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	// Bob follows his stream on node B; alice sends through node A.
	got := make(chan string, 10)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	drained := make(chan struct{})
	go bob.Receive(rctx, client.ReceiveOptions{Follow: true}, func(e client.Event) error {
		switch e.Kind {
		case client.EventDrained:
			select {
			case <-drained:
			default:
				close(drained)
			}
		case client.EventMessage:
			got <- e.Message.Text
		}
		return nil
	})
	<-drained
	for _, text := range []string{"across nodes", "and again"} {
		if _, err := alice.Send(ctx, "bob", text); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m != text {
				t.Fatalf("bob got %q, want %q", m, text)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%q did not reach bob's stream on the other node", text)
		}
	}
}
