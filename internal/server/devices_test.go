package server

import (
	"bytes"
	"context"
	"testing"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
)

// addPhone publishes version 2 of a's list with a second device and returns
// it, logged in.
func (h *harness) addPhone(a *account) (*account, *identity.SignedDeviceList) {
	h.t.Helper()
	phone := identity.GenerateDeviceKeys()
	v2 := nextList(h.t, a, a.key, 2, a.list, a.dev.Public(), phone.Public())
	if _, err := h.dir.PublishDeviceList(context.Background(), req(a, &parleyv1.PublishDeviceListRequest{SignedDeviceList: v2.Marshal()})); err != nil {
		h.t.Fatal(err)
	}
	p := &account{name: a.name, key: a.key, dev: phone, list: v2}
	h.login(p)
	return p, v2
}

// TestListDevicesOwnAccountOnly: ListDevices answers the caller's own
// account's devices with their times, never another account's.
func TestListDevicesOwnAccountOnly(t *testing.T) {
	h := newHarness(t, testConfig())
	alice, bob := h.register("alice", 2), h.register("bob", 2)
	phone, _ := h.addPhone(alice)
	ctx := context.Background()

	for _, who := range []*account{alice, phone} {
		resp, err := h.dir.ListDevices(ctx, req(who, &parleyv1.ListDevicesRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Msg.Devices) != 2 {
			t.Fatalf("alice's devices: %d, want 2", len(resp.Msg.Devices))
		}
		for _, d := range resp.Msg.Devices {
			id := [16]byte(d.DeviceId)
			if id != alice.id() && id != phone.id() {
				t.Errorf("alice's list holds device %x", id)
			}
			if d.AddedUnixMs == 0 || d.LastSeenUnixMs == 0 {
				t.Errorf("device %x without times: %+v", id, d)
			}
		}
	}
	resp, err := h.dir.ListDevices(ctx, req(bob, &parleyv1.ListDevicesRequest{}))
	if err != nil || len(resp.Msg.Devices) != 1 || [16]byte(resp.Msg.Devices[0].DeviceId) != bob.id() {
		t.Fatalf("bob's devices: %v %v", resp, err)
	}
	if _, err := h.dir.ListDevices(ctx, req[parleyv1.ListDevicesRequest](nil, &parleyv1.ListDevicesRequest{})); code(err) != connect.CodeUnauthenticated {
		t.Fatalf("ListDevices without a token: %v, want Unauthenticated", err)
	}
}

// TestDeleteAccountOwnAccountOnly: a device deletes only its own account;
// deletion removes devices, lists, prekeys and queues, ends every stream of
// the account with PermissionDenied, and leaves other accounts alone.
func TestDeleteAccountOwnAccountOnly(t *testing.T) {
	h := newHarness(t, testConfig())
	alice, bob := h.register("alice", 2), h.register("bob", 2)
	phone, _ := h.addPhone(alice)
	ctx := context.Background()

	if _, err := h.dir.DeleteAccount(ctx, req(bob, &parleyv1.DeleteAccountRequest{Username: "alice"})); code(err) != connect.CodePermissionDenied {
		t.Fatalf("bob deleting alice: %v, want PermissionDenied", err)
	}
	if _, err := h.dir.DeleteAccount(ctx, req[parleyv1.DeleteAccountRequest](nil, &parleyv1.DeleteAccountRequest{Username: "alice"})); code(err) != connect.CodeUnauthenticated {
		t.Fatalf("deleting without a token: %v, want Unauthenticated", err)
	}
	if _, err := h.st.Account(ctx, "alice"); err != nil {
		t.Fatalf("a refused deletion changed the account: %v", err)
	}

	aid, pid := alice.id(), phone.id()
	if _, err := h.relay.Send(ctx, req(bob, &parleyv1.SendRequest{MessageId: messageID(1), Recipient: "alice",
		Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: aid[:], Body: envelope("1")}, {DeviceId: pid[:], Body: envelope("2")}},
	})); err != nil {
		t.Fatal(err)
	}
	s := h.receive(phone)
	s.nextEnvelope(t)

	// Alice's laptop deletes the account (the name is case-folded).
	if _, err := h.dir.DeleteAccount(ctx, req(alice, &parleyv1.DeleteAccountRequest{Username: "Alice"})); err != nil {
		t.Fatal(err)
	}
	if err := <-s.done; code(err) != connect.CodePermissionDenied {
		t.Fatalf("the phone's stream ended with %v, want PermissionDenied", err)
	}
	if _, err := h.st.Account(ctx, "alice"); code(h.srv.toConnect(ctx, "", err)) != connect.CodeNotFound {
		t.Fatalf("account after deletion: %v", err)
	}
	for _, id := range [][16]byte{aid, pid} {
		if envs, _ := h.st.Fetch(ctx, id, 0, 10); len(envs) != 0 {
			t.Errorf("queue of %x survived", id)
		}
		if _, err := h.st.ClaimBundle(ctx, id); err == nil {
			t.Errorf("prekeys of %x survived", id)
		}
	}
	if _, err := h.dir.GetDeviceList(ctx, req(bob, &parleyv1.GetDeviceListRequest{Username: "alice", Version: 1})); code(err) != connect.CodeNotFound {
		t.Fatalf("alice's old list: %v, want NotFound", err)
	}
	for _, who := range []*account{alice, phone} {
		if _, err := h.dir.ListDevices(ctx, req(who, &parleyv1.ListDevicesRequest{})); code(err) != connect.CodeUnauthenticated {
			t.Errorf("a deleted account's token: %v, want Unauthenticated", err)
		}
	}
	// Bob is untouched.
	if resp, err := h.dir.ListDevices(ctx, req(bob, &parleyv1.ListDevicesRequest{})); err != nil || len(resp.Msg.Devices) != 1 {
		t.Fatalf("bob after alice's deletion: %v %v", resp, err)
	}
}

// TestRemovalProof: a removed device that signs a challenge gets the list
// versions after the one it knows; a current device, a wrong signature, a
// device not in the named version and a deleted account are refused.
func TestRemovalProof(t *testing.T) {
	h := newHarness(t, testConfig())
	alice := h.register("alice", 2)
	phone, v2 := h.addPhone(alice)
	ctx := context.Background()
	ask := func(who *account, known uint64, signer *identity.DeviceKeys) (*parleyv1.GetRemovalProofResponse, error) {
		id := who.id()
		ch, err := h.auth.Challenge(ctx, connect.NewRequest(&parleyv1.ChallengeRequest{DeviceId: id[:]}))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h.dir.GetRemovalProof(ctx, connect.NewRequest(&parleyv1.GetRemovalProofRequest{
			Username: who.name, KnownVersion: known, DeviceId: id[:], Challenge: ch.Msg.Challenge,
			Signature: signer.Signing.Sign(primitives.LabelSigAuthChallenge, ch.Msg.Challenge),
		}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	if _, err := ask(phone, 2, phone.dev); code(err) != connect.CodeFailedPrecondition {
		t.Fatalf("a current device: %v, want FailedPrecondition", err)
	}
	v3 := nextList(t, alice, alice.key, 3, v2, alice.dev.Public())
	if _, err := h.dir.PublishDeviceList(ctx, req(alice, &parleyv1.PublishDeviceListRequest{SignedDeviceList: v3.Marshal()})); err != nil {
		t.Fatal(err)
	}
	if _, err := ask(phone, 2, alice.dev); code(err) != connect.CodeUnauthenticated {
		t.Fatalf("signed by another device: %v, want Unauthenticated", err)
	}
	if _, err := ask(phone, 1, phone.dev); code(err) != connect.CodeUnauthenticated {
		t.Fatalf("a version that does not name the device: %v, want Unauthenticated", err)
	}
	got, err := ask(phone, 2, phone.dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.SignedDeviceLists) != 1 || !bytes.Equal(got.SignedDeviceLists[0], v3.Marshal()) || got.More {
		t.Fatalf("proof: %d lists, more=%v", len(got.SignedDeviceLists), got.More)
	}
	if _, err := h.dir.DeleteAccount(ctx, req(alice, &parleyv1.DeleteAccountRequest{Username: "alice"})); err != nil {
		t.Fatal(err)
	}
	if _, err := ask(phone, 2, phone.dev); code(err) != connect.CodeNotFound {
		t.Fatalf("after the account's deletion: %v, want NotFound", err)
	}
}
