package server

import (
	"context"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
)

// pgNode is one server on a shared PostgreSQL database.
type pgNode struct {
	srv    *Server
	st     *postgres.Store
	stopKT func()
	dir    parleyv1connect.DirectoryServiceClient
	kt     parleyv1connect.TransparencyServiceClient
}

func newPGNode(t *testing.T, dsn string) *pgNode {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(testConfig(), st, mem.New())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	n := &pgNode{srv: srv, st: st, stopKT: runTransparency(srv)}
	n.dir = parleyv1connect.NewDirectoryServiceClient(hs.Client(), hs.URL)
	n.kt = parleyv1connect.NewTransparencyServiceClient(hs.Client(), hs.URL)
	t.Cleanup(func() {
		n.stopKT()
		hs.Close()
		st.Close()
	})
	return n
}

func (n *pgNode) sequencing() bool {
	n.srv.kt.mu.Lock()
	defer n.srv.kt.mu.Unlock()
	return n.srv.kt.lease != nil
}

// TestSequencerTakeover: of two nodes on one PostgreSQL database exactly
// one sequences; when it stops, the other takes over and continues the
// same log, which a client that trusted the old checkpoint accepts.
func TestSequencerTakeover(t *testing.T) {
	pgtest.ServerDSN(t)
	dsn := pgtest.NewDatabase(t)
	a, b := newPGNode(t, dsn), newPGNode(t, dsn)
	cfg := ktConfig(t, a.kt)
	alice, rq := (&harness{t: t}).registerRequest("alice", 2)
	if _, err := a.dir.Register(context.Background(), connect.NewRequest(rq)); err != nil {
		t.Fatal(err)
	}
	first := waitSequenced(t, b.dir, cfg, nil, "alice", 0)
	eventually(t, "one sequencer", func() bool { return a.sequencing() != b.sequencing() })
	leader, follower := a, b
	if b.sequencing() {
		leader, follower = b, a
	}
	leader.stopKT()
	eventually(t, "the follower takes over", follower.sequencing)

	// A new version, published through the old leader (which still
	// serves, without sequencing), is sequenced by the new one.
	v2 := nextList(t, alice, alice.key, 2, alice.list, alice.dev.Public())
	if _, err := leader.dir.RecoverAccount(context.Background(), connect.NewRequest(&parleyv1.RecoverAccountRequest{
		Username: "alice", SignedDeviceList: v2.Marshal(),
	})); err != nil {
		t.Fatal(err)
	}
	after := waitSequenced(t, follower.dir, cfg, first.trusted, "alice", 1)
	if after.trusted.Checkpoint.Size <= first.trusted.Checkpoint.Size {
		t.Fatal("the log did not grow after the takeover")
	}
	auditAll(t, follower.kt, cfg, 50)
}
