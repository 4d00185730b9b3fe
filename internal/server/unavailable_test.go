package server

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/store"
)

// TestDatabaseUnavailableIsUnavailable: when the store cannot reach its
// database, sends and streams fail with Unavailable — retry shortly, here
// or on another node — not Internal, and the answer does not repeat the
// database's own message (which names hosts and users).
func TestDatabaseUnavailableIsUnavailable(t *testing.T) {
	h := newHarness(t, testConfig())
	alice := h.register("alice", 1)
	bob := h.register("bob", 1)
	ctx := context.Background()

	down := &atomic.Bool{}
	h.srv.store = &downStore{Store: h.st, down: down}
	down.Store(true)
	to := bob.id()
	_, err := h.relay.Send(ctx, req(alice, &parleyv1.SendRequest{
		MessageId: messageID(1), Recipient: "bob",
		Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: to[:], Body: envelope("hi")}},
	}))
	if code(err) != connect.CodeUnavailable || strings.Contains(err.Error(), "db.internal") {
		t.Fatalf("send while the database is down: %v", err)
	}
	s, err := h.relay.Receive(ctx, req(bob, &parleyv1.ReceiveRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for s.Receive() {
	}
	if code(s.Err()) != connect.CodeUnavailable {
		t.Fatalf("stream while the database is down: %v", s.Err())
	}
	s.Close()

	// Back up: the same call succeeds.
	down.Store(false)
	if _, err := h.relay.Send(ctx, req(alice, &parleyv1.SendRequest{
		MessageId: messageID(1), Recipient: "bob",
		Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: to[:], Body: envelope("hi")}},
	})); err != nil {
		t.Fatalf("send after the database came back: %v", err)
	}
}

// downStore fails every call the way internal/store/postgres does while
// its database restarts, when down is set.
type downStore struct {
	store.Store
	down *atomic.Bool
}

func (s *downStore) err() error {
	if s.down.Load() {
		return fmt.Errorf("postgres: acquire connection: %w: failed to connect to `user=parleyd database=parley`: db.internal:5432: connect: connection refused", store.ErrUnavailable)
	}
	return nil
}

func (s *downStore) Device(ctx context.Context, id store.DeviceID) (*store.Device, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Device(ctx, id)
}
