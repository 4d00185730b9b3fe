package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/parleyim/parley/client"
	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
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

// TestTwoNodesOneSequencer: two nodes on one PostgreSQL database keep one
// key-transparency log: exactly one of them sequences, and both serve
// lookups whose proofs verify against the same log, for lists published
// through either node.
func TestTwoNodesOneSequencer(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	t.Setenv("PARLEYD_POSTGRES", dsn)
	t.Setenv("PARLEYD_KT_EPOCH_INTERVAL", "50ms")
	urlA, _, _ := start(t, "--data", filepath.Join(t.TempDir(), "a"), "--listen", "127.0.0.1:0")
	urlB, _, _ := start(t, "--data", filepath.Join(t.TempDir(), "b"), "--listen", "127.0.0.1:0")
	ctx := context.Background()
	for _, c := range []struct{ url, name string }{{urlA, "alice"}, {urlB, "bob"}} {
		cl, err := client.Register(ctx, t.TempDir(), c.url, c.name, client.Options{Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	cfgA, cfgB := ktConfig(t, urlA), ktConfig(t, urlB)
	if cfgA.Origin != cfgB.Origin || !bytes.Equal(cfgA.VRF.Bytes(), cfgB.VRF.Bytes()) || cfgA.Hybrid.String() != cfgB.Hybrid.String() {
		t.Fatal("the two nodes announce different logs")
	}
	var trusted *verify.Trusted
	for _, url := range []string{urlA, urlB, urlA} {
		for _, name := range []string{"alice", "bob"} {
			deadline := time.Now().Add(20 * time.Second)
			for {
				tr, f, err := lookupKT(url, cfgA, trusted, name)
				if err == nil && f.Version == 0 {
					trusted = tr
					break
				}
				if errors.Is(err, verify.ErrSecurity) {
					t.Fatalf("%s on %s: %v", name, url, err)
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s on %s: not sequenced within 20s: %v", name, url, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	sequencers := 0
	for _, url := range []string{urlA, urlB} {
		if metric(t, url, "parleyd_kt_sequencer") == 1 {
			sequencers++
		}
	}
	if sequencers != 1 {
		t.Fatalf("%d nodes say they are the sequencer, want exactly 1", sequencers)
	}
	if made := metric(t, urlA, "parleyd_kt_epochs_made_total") + metric(t, urlB, "parleyd_kt_epochs_made_total"); made < 1 {
		t.Fatalf("%v epochs made", made)
	}
}

func ktConfig(t *testing.T, url string) *verify.Config {
	t.Helper()
	c := parleyv1connect.NewTransparencyServiceClient(http.DefaultClient, url)
	resp, err := c.GetConfig(context.Background(), connect.NewRequest(&parleyv1.GetTransparencyConfigRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := verify.NewConfig(resp.Msg.Ed25519Vkey, resp.Msg.HybridVkey, resp.Msg.VrfPublicKey, verify.WitnessPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// lookupKT runs GetDeviceList on url and verifies its proofs.
func lookupKT(url string, cfg *verify.Config, prev *verify.Trusted, name string) (*verify.Trusted, *verify.Found, error) {
	var from uint64
	if prev != nil {
		from = prev.Checkpoint.Size
	}
	d := parleyv1connect.NewDirectoryServiceClient(http.DefaultClient, url)
	resp, err := d.GetDeviceList(context.Background(), connect.NewRequest(&parleyv1.GetDeviceListRequest{Username: name, KtFromSize: from}))
	if err != nil {
		return nil, nil, err
	}
	if len(resp.Msg.KtHead) == 0 {
		return nil, nil, errors.New("no head yet")
	}
	h, err := kt.UnmarshalHead(resp.Msg.KtHead)
	if err != nil {
		return nil, nil, err
	}
	tr, err := cfg.VerifyHead(prev, h, time.Now())
	if err != nil {
		return nil, nil, err
	}
	p, err := kt.UnmarshalSearchProof(resp.Msg.KtSearch)
	if err != nil {
		return nil, nil, err
	}
	f, err := cfg.VerifySearch(tr, name, p)
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(f.Value, resp.Msg.KtValue) || !bytes.Equal(f.Value, resp.Msg.SignedDeviceList) {
		return nil, nil, fmt.Errorf("%s: kt_value and the list differ from the proven value", name)
	}
	return tr, f, nil
}

// metric reads one unlabelled metric from url's /metrics.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s at %s", name, url)
	return 0
}
