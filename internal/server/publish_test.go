package server

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/store"
)

// nextList signs the next version of a's device list with devs.
func nextList(t *testing.T, a *account, key *identity.AccountKey, version uint64, prev *identity.SignedDeviceList, devs ...*identity.DevicePublic) *identity.SignedDeviceList {
	t.Helper()
	l := &identity.DeviceList{Account: a.name, Version: version, Prev: prev.Hash()}
	for i, d := range devs {
		l.Devices = append(l.Devices, identity.DeviceEntry{Device: d, Name: "dev", Added: uint64(i + 1)})
	}
	s, err := identity.SignDeviceList(key, l)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPublishDeviceList(t *testing.T) {
	h := newHarness(t, testConfig())
	alice, bob := h.register("alice", 2), h.register("bob", 2)
	ctx := context.Background()
	publish := func(who *account, s *identity.SignedDeviceList) error {
		_, err := h.dir.PublishDeviceList(ctx, req(who, &parleyv1.PublishDeviceListRequest{SignedDeviceList: s.Marshal()}))
		return err
	}
	phone := identity.GenerateDeviceKeys()
	v2 := nextList(t, alice, alice.key, 2, alice.list, alice.dev.Public(), phone.Public())

	// Attacks first, each refused with nothing changed.
	mallory := identity.GenerateAccountKey()
	for name, c := range map[string]struct {
		who  *account
		list *identity.SignedDeviceList
	}{
		"not signed by the account key": {alice, nextList(t, alice, mallory, 2, alice.list, alice.dev.Public(), phone.Public())},
		"skips a version":               {alice, nextList(t, alice, alice.key, 3, alice.list, alice.dev.Public(), phone.Public())},
		"does not chain":                {alice, nextList(t, alice, alice.key, 2, bob.list, alice.dev.Public(), phone.Public())},
		"another account's device":      {bob, v2},
	} {
		if err := publish(c.who, c.list); code(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if l, _ := h.st.DeviceList(ctx, "alice", 0); l.Version != 1 {
		t.Fatal("a refused list changed the account")
	}

	if err := publish(alice, v2); err != nil {
		t.Fatal(err)
	}
	if err := publish(alice, v2); err != nil {
		t.Fatalf("retrying the same version: %v", err)
	}
	if err := publish(alice, alice.list); code(err) != connect.CodeInvalidArgument {
		t.Fatalf("replaying version 1: %v, want InvalidArgument", err)
	}
	// The new device can now authenticate — and reaches only its own
	// queue, not that of the other device of its own account.
	phoneAcct := &account{name: "alice", key: alice.key, dev: phone}
	h.login(phoneAcct)
	aid, pid := alice.id(), phoneAcct.id()
	if _, err := h.relay.Send(ctx, req(bob, &parleyv1.SendRequest{MessageId: messageID(1), Recipient: "alice",
		Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: aid[:], Body: envelope("to laptop")}, {DeviceId: pid[:], Body: envelope("to phone")}},
	})); err != nil {
		t.Fatal(err)
	}
	laptopQueue, _ := h.st.Fetch(ctx, aid, 0, 10)
	if _, err := h.relay.Ack(ctx, req(phoneAcct, &parleyv1.AckRequest{Seqs: []uint64{laptopQueue[0].Seq}})); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.st.QueueLength(ctx, aid); n != 1 {
		t.Fatal("the phone's ack deleted the laptop's envelope")
	}

	// Removing it: its stream ends and its token stops working.
	s := h.receive(phoneAcct)
	if e := s.nextEnvelope(t); string(e.Body) != string(envelope("to phone")) {
		t.Fatalf("the phone's stream carried %q", e.Body)
	}
	v3 := nextList(t, alice, alice.key, 3, v2, alice.dev.Public())
	if err := publish(alice, v3); err != nil {
		t.Fatal(err)
	}
	if err := <-s.done; code(err) != connect.CodePermissionDenied {
		t.Fatalf("removed device's stream ended with %v, want PermissionDenied", err)
	}
	if _, err := h.dir.GetDeviceList(ctx, req(phoneAcct, &parleyv1.GetDeviceListRequest{Username: "alice"})); code(err) != connect.CodeUnauthenticated {
		t.Fatalf("removed device's token: %v, want Unauthenticated", err)
	}
}

// TestPublishWithNewDevicePrekeys: a device list version may carry the
// prekeys of the devices it adds (from their link offers), verified under
// each new device's key; prekeys for a device it does not add, or signed by
// another key, are refused.
func TestPublishWithNewDevicePrekeys(t *testing.T) {
	h := newHarness(t, testConfig())
	alice := h.register("alice", 1)
	ctx := context.Background()
	phone, other := identity.GenerateDeviceKeys(), identity.GenerateDeviceKeys()
	_, phoneUp, _ := prekey.NewSet(phone.Signing, 0)
	_, otherUp, _ := prekey.NewSet(other.Signing, 0)
	v2 := nextList(t, alice, alice.key, 2, alice.list, alice.dev.Public(), phone.Public())
	pid, aid := store.DeviceID(phone.Public().ID()), alice.id()
	publish := func(id store.DeviceID, up *prekey.Upload) error {
		_, err := h.dir.PublishDeviceList(ctx, req(alice, &parleyv1.PublishDeviceListRequest{
			SignedDeviceList: v2.Marshal(),
			NewDevices:       []*parleyv1.NewDevicePrekeys{{DeviceId: id[:], Prekeys: upload(up)}},
		}))
		return err
	}
	if err := publish(pid, otherUp); code(err) != connect.CodeInvalidArgument {
		t.Fatalf("another device's prekeys: %v, want InvalidArgument", err)
	}
	if err := publish(aid, phoneUp); code(err) != connect.CodeInvalidArgument {
		t.Fatalf("prekeys for a device the version does not add: %v, want InvalidArgument", err)
	}
	if err := publish(pid, phoneUp); err != nil {
		t.Fatal(err)
	}
	// The new device is reachable at once.
	cl, err := h.dir.ClaimBundles(ctx, req(alice, &parleyv1.ClaimBundlesRequest{Username: "alice", DeviceIds: [][]byte{pid[:]}}))
	if err != nil || len(cl.Msg.Bundles) != 1 {
		t.Fatalf("claiming the new device's bundle: %v", err)
	}
	b, err := prekey.ParseBundle(cl.Msg.Bundles[0].Bundle)
	if err != nil || b.Verify(phone.Public().Signing) != nil || !b.PQ.LastResort {
		t.Fatalf("the new device's bundle does not verify under its key: %v", err)
	}
}
