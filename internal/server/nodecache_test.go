package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/store"
)

// secondNode starts another server on h's store, as a second parleyd
// sharing one database would be, and returns clients for it.
func (h *harness) secondNode() (parleyv1connect.DirectoryServiceClient, parleyv1connect.RelayServiceClient) {
	h.t.Helper()
	b := mem.New()
	h.t.Cleanup(func() { _ = b.Close() })
	node, err := New(h.cfg, h.st, b)
	if err != nil {
		h.t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(node.Handler())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	h.t.Cleanup(hs.Close)
	return parleyv1connect.NewDirectoryServiceClient(hs.Client(), hs.URL), parleyv1connect.NewRelayServiceClient(hs.Client(), hs.URL)
}

// TestRemovedDeviceTokenRefusedOnEveryNode: a device removed from its
// account keeps a token that is valid for up to an hour. The node that
// removed it refuses the token at once; another node sharing the store,
// which authenticated the device a moment before and remembers it
// (nodecache.go), refuses it within NodeCacheTTL — at once if it is 0.
func TestRemovedDeviceTokenRefusedOnEveryNode(t *testing.T) {
	for _, ttl := range []time.Duration{DefaultNodeCacheTTL, 0} {
		t.Run(fmt.Sprintf("ttl=%v", ttl), func(t *testing.T) {
			cfg := testConfig()
			cfg.NodeCacheTTL = ttl
			removedDeviceTokenRefused(t, cfg)
		})
	}
}

func removedDeviceTokenRefused(t *testing.T, cfg Config) {
	h := newHarness(t, cfg)
	alice := h.register("alice", 2)
	phone, v2 := h.addPhone(alice)
	ctx := context.Background()

	dirB, _ := h.secondNode()
	list := func(dir parleyv1connect.DirectoryServiceClient) error {
		_, err := dir.ListDevices(ctx, req(phone, &parleyv1.ListDevicesRequest{}))
		return err
	}
	if err := list(dirB); err != nil {
		t.Fatalf("the phone on node B before removal: %v", err)
	}

	v3 := nextList(t, alice, alice.key, 3, v2, alice.dev.Public())
	if _, err := h.dir.PublishDeviceList(ctx, req(alice, &parleyv1.PublishDeviceListRequest{SignedDeviceList: v3.Marshal()})); err != nil {
		t.Fatal(err)
	}
	removedAt := time.Now()
	if err := list(h.dir); code(err) != connect.CodeUnauthenticated {
		t.Fatalf("the removed phone on the node that removed it: %v, want Unauthenticated at once", err)
	}
	for {
		err := list(dirB)
		if code(err) == connect.CodeUnauthenticated {
			break
		}
		if err != nil {
			t.Fatalf("the removed phone on node B: %v", err)
		}
		if waited := time.Since(removedAt); waited > cfg.NodeCacheTTL+500*time.Millisecond || cfg.NodeCacheTTL == 0 {
			t.Fatalf("node B still accepts the removed phone's token %v after its removal (NodeCacheTTL %v)", waited, cfg.NodeCacheTTL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The account's current device still authenticates on both nodes.
	for _, dir := range []parleyv1connect.DirectoryServiceClient{h.dir, dirB} {
		if _, err := dir.ListDevices(ctx, req(alice, &parleyv1.ListDevicesRequest{})); err != nil {
			t.Fatalf("alice after the removal: %v", err)
		}
	}
}

// TestNodeCacheBounded: a full cache drops its expired entries first and
// never holds more than nodeCacheMax.
func TestNodeCacheBounded(t *testing.T) {
	c := newTTLCache[store.DeviceID, string](DefaultNodeCacheTTL)
	t0 := time.Now()
	var id [16]byte
	for i := range nodeCacheMax {
		id[0], id[1], id[2] = byte(i), byte(i>>8), byte(i>>16)
		c.put(id, "old", t0)
	}
	later := t0.Add(DefaultNodeCacheTTL)
	if _, ok := c.get(id, later); ok {
		t.Fatal("an entry outlived DefaultNodeCacheTTL")
	}
	id[3] = 1
	c.put(id, "new", later)
	if n := len(c.m); n != 1 {
		t.Fatalf("after expiry, a full cache kept %d entries, want 1", n)
	}
	for i := range nodeCacheMax + 10 {
		id[0], id[1], id[2], id[3] = byte(i), byte(i>>8), byte(i>>16), 2
		c.put(id, "fresh", later)
		if len(c.m) > nodeCacheMax {
			t.Fatalf("cache grew to %d, max %d", len(c.m), nodeCacheMax)
		}
	}
	if name, ok := c.get(id, later); !ok || name != "fresh" {
		t.Fatalf("the newest entry: %q %v", name, ok)
	}
}

// TestDeviceListChangedOnAnotherNode: node B remembers alice's device set
// from a send a moment ago when alice links a phone through node A. A send
// through B that includes the phone is checked against the store and
// accepted at once; one that leaves the phone out is refused as missing
// it once DefaultNodeCacheTTL has passed, so a new device cannot be left out of
// the conversation for longer than that. When alice then removes the phone
// through node A, a send through B that still addresses it is refused at
// once, naming it stale, with nothing stored.
func TestDeviceListChangedOnAnotherNode(t *testing.T) {
	h := newHarness(t, testConfig())
	alice, bob := h.register("alice", 4), h.register("bob", 2)
	_, relayB := h.secondNode()
	ctx := context.Background()
	aid := alice.id()
	send := func(n byte, to ...store.DeviceID) error {
		var envs []*parleyv1.OutgoingEnvelope
		for _, id := range to {
			envs = append(envs, &parleyv1.OutgoingEnvelope{DeviceId: id[:], Body: envelope("hi")})
		}
		_, err := relayB.Send(ctx, req(bob, &parleyv1.SendRequest{MessageId: messageID(n), Recipient: "alice", Envelopes: envs}))
		return err
	}
	if err := send(1, aid); err != nil {
		t.Fatal(err)
	}
	phone, v2 := h.addPhone(alice) // through node A
	pid := phone.id()
	if err := send(2, aid, pid); err != nil {
		t.Fatalf("a send through node B including the phone just linked through node A: %v", err)
	}
	time.Sleep(DefaultNodeCacheTTL)
	err := send(3, aid)
	if mm := mismatchOf(err); code(err) != connect.CodeFailedPrecondition || mm == nil || len(mm.Missing) != 1 || string(mm.Missing[0]) != string(pid[:]) {
		t.Fatalf("a send leaving the phone out, after DefaultNodeCacheTTL: %v, want FailedPrecondition naming the phone as missing", err)
	}

	if err := send(4, aid, pid); err != nil { // B reads and remembers {laptop, phone}
		t.Fatal(err)
	}
	v3 := nextList(t, alice, alice.key, 3, v2, alice.dev.Public())
	if _, err := h.dir.PublishDeviceList(ctx, req(alice, &parleyv1.PublishDeviceListRequest{SignedDeviceList: v3.Marshal()})); err != nil {
		t.Fatal(err)
	}
	before, _ := h.st.QueueLength(ctx, aid)
	err = send(5, aid, pid)
	if mm := mismatchOf(err); code(err) != connect.CodeFailedPrecondition || mm == nil || len(mm.Stale) != 1 || string(mm.Stale[0]) != string(pid[:]) {
		t.Fatalf("a send through node B to the phone just removed through node A: %v, want FailedPrecondition naming it stale", err)
	}
	if after, _ := h.st.QueueLength(ctx, aid); after != before {
		t.Fatalf("the refused send stored %d envelopes", after-before)
	}
	if err := send(6, aid); err != nil {
		t.Fatalf("the corrected send through node B: %v", err)
	}
}
