package server

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/bus/mem"
)

// TestRemovedDeviceTokenRefusedOnEveryNode: a device removed from its
// account keeps a token that is valid for up to an hour. The node that
// removed it refuses the token at once; another node sharing the store,
// which authenticated the device a moment before and remembers it
// (authcache.go), refuses it within authCacheTTL.
func TestRemovedDeviceTokenRefusedOnEveryNode(t *testing.T) {
	h := newHarness(t, testConfig())
	alice := h.register("alice", 2)
	phone, v2 := h.addPhone(alice)
	ctx := context.Background()

	// Node B: another server on the same store.
	b := mem.New()
	t.Cleanup(func() { _ = b.Close() })
	nodeB, err := New(h.cfg, h.st, b)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nodeB.Handler())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	t.Cleanup(hs.Close)
	dirB := parleyv1connect.NewDirectoryServiceClient(hs.Client(), hs.URL)
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
		if waited := time.Since(removedAt); waited > authCacheTTL+500*time.Millisecond {
			t.Fatalf("node B still accepts the removed phone's token %v after its removal (authCacheTTL %v)", waited, authCacheTTL)
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

// TestAuthCacheBounded: a full cache drops its expired entries first and
// never holds more than authCacheMax.
func TestAuthCacheBounded(t *testing.T) {
	c := newAuthCache()
	t0 := time.Now()
	var id [16]byte
	for i := range authCacheMax {
		id[0], id[1], id[2] = byte(i), byte(i>>8), byte(i>>16)
		c.put(id, "old", t0)
	}
	later := t0.Add(authCacheTTL)
	if _, ok := c.get(id, later); ok {
		t.Fatal("an entry outlived authCacheTTL")
	}
	id[3] = 1
	c.put(id, "new", later)
	if n := len(c.m); n != 1 {
		t.Fatalf("after expiry, a full cache kept %d entries, want 1", n)
	}
	for i := range authCacheMax + 10 {
		id[0], id[1], id[2], id[3] = byte(i), byte(i>>8), byte(i>>16), 2
		c.put(id, "fresh", later)
		if len(c.m) > authCacheMax {
			t.Fatalf("cache grew to %d, max %d", len(c.m), authCacheMax)
		}
	}
	if name, ok := c.get(id, later); !ok || name != "fresh" {
		t.Fatalf("the newest entry: %q %v", name, ok)
	}
}
