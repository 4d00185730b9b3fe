package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
)

func TestSendReceiveAck(t *testing.T) {
	h := newHarness(t, testConfig())
	alice, bob := h.register("alice", 5), h.register("bob", 5)
	ctx := context.Background()

	// Alice claims Bob's bundle: one per device, with a one-time prekey.
	cl, err := h.dir.ClaimBundles(ctx, req(alice, &parleyv1.ClaimBundlesRequest{Username: "Bob"}))
	if err != nil {
		t.Fatal(err)
	}
	bobID := bob.id()
	if len(cl.Msg.Bundles) != 1 || !bytes.Equal(cl.Msg.Bundles[0].DeviceId, bobID[:]) {
		t.Fatalf("claimed %d bundles", len(cl.Msg.Bundles))
	}

	for i := range 3 {
		bid := bob.id()
		res, err := h.relay.Send(ctx, req(alice, &parleyv1.SendRequest{
			MessageId: messageID(byte(i)), Recipient: "bob",
			Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: bid[:], Body: envelope(fmt.Sprint("m", i))}},
		}))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		// Empty, so that HTTP/2 carries the answer in its HEADERS frame
		// alone (relay.go, SendResponse).
		if n := proto.Size(res.Msg); n != 0 {
			t.Errorf("send %d answered with a %d-byte message, want an empty one", i, n)
		}
	}
	s := h.receive(bob)
	var seqs []uint64
	for i := range 3 {
		e := s.nextEnvelope(t)
		if want := envelope(fmt.Sprint("m", i)); !bytes.Equal(e.Body, want) || e.Sender != "alice" {
			t.Fatalf("envelope %d out of order or wrong: %q from %s", i, e.Body, e.Sender)
		}
		seqs = append(seqs, e.Seq)
	}
	if s.next(t).GetDrained() == nil {
		t.Fatal("no drained marker after the queue")
	}
	// A live send arrives on the open stream.
	bid := bob.id()
	if _, err := h.relay.Send(ctx, req(alice, &parleyv1.SendRequest{
		MessageId: messageID(9), Recipient: "bob",
		Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: bid[:], Body: envelope("live")}},
	})); err != nil {
		t.Fatal(err)
	}
	live := s.nextEnvelope(t)
	if !bytes.Equal(live.Body, envelope("live")) {
		t.Fatalf("live envelope %q", live.Body)
	}
	seqs = append(seqs, live.Seq)
	if _, err := h.relay.Ack(ctx, req(bob, &parleyv1.AckRequest{Seqs: seqs})); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.st.QueueLength(ctx, bob.id()); n != 0 {
		t.Fatalf("queue holds %d envelopes after ack", n)
	}
}

// TestSendToStaleDeviceSetRefused: a send whose envelopes do not match the
// recipient's (and the sender's own) current devices stores nothing and
// names what is missing and extra.
func TestSendToStaleDeviceSetRefused(t *testing.T) {
	h := newHarness(t, testConfig())
	alice, bob := h.register("alice", 1), h.register("bob", 1)
	ctx := context.Background()
	bogus := messageID(0)
	_, err := h.relay.Send(ctx, req(alice, &parleyv1.SendRequest{
		MessageId: messageID(1), Recipient: "bob",
		Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: bogus, Body: envelope("x")}},
	}))
	if code(err) != connect.CodeFailedPrecondition {
		t.Fatalf("mismatched send: %v, want FailedPrecondition", err)
	}
	mm := mismatchOf(err)
	bid := bob.id()
	if mm == nil || len(mm.Missing) != 1 || !bytes.Equal(mm.Missing[0], bid[:]) || len(mm.Extra) != 1 || !bytes.Equal(mm.Extra[0], bogus) {
		t.Fatalf("mismatch detail = %v", mm)
	}
	if n, _ := h.st.QueueLength(ctx, bob.id()); n != 0 {
		t.Fatal("a refused send stored something")
	}
}

// TestAuthorizationMatrix tries every authenticated RPC with no token, a
// forged token and another device's token.
func TestAuthorizationMatrix(t *testing.T) {
	h := newHarness(t, testConfig())
	alice, bob := h.register("alice", 2), h.register("bob", 2)
	ctx := context.Background()
	forged := &account{token: "AQ" + string(bytes.Repeat([]byte("A"), 72))}
	tampered := &account{token: alice.token[:len(alice.token)-2] + "AA"}
	for _, who := range []*account{nil, forged, tampered} {
		name := "no token"
		if who != nil {
			name = "token " + who.token[:6]
		}
		t.Run(name, func(t *testing.T) {
			calls := map[string]error{}
			if who != nil {
				// Without any token GetDeviceList is an anonymous lookup
				// (TestAnonymousDeviceListLookupLimited); a bad token is
				// refused like everywhere else.
				_, calls["GetDeviceList"] = h.dir.GetDeviceList(ctx, req(who, &parleyv1.GetDeviceListRequest{Username: "bob"}))
			}
			_, calls["PublishDeviceList"] = h.dir.PublishDeviceList(ctx, req(who, &parleyv1.PublishDeviceListRequest{SignedDeviceList: alice.list.Marshal()}))
			_, calls["UploadPrekeys"] = h.dir.UploadPrekeys(ctx, req(who, &parleyv1.UploadPrekeysRequest{}))
			_, calls["ClaimBundles"] = h.dir.ClaimBundles(ctx, req(who, &parleyv1.ClaimBundlesRequest{Username: "bob"}))
			_, calls["Send"] = h.relay.Send(ctx, req(who, &parleyv1.SendRequest{MessageId: messageID(1), Recipient: "bob"}))
			_, calls["Ack"] = h.relay.Ack(ctx, req(who, &parleyv1.AckRequest{Seqs: []uint64{1}}))
			s, err := h.relay.Receive(ctx, req(who, &parleyv1.ReceiveRequest{}))
			if err == nil {
				s.Receive()
				err = s.Err()
				s.Close()
			}
			calls["Receive"] = err
			for rpc, err := range calls {
				if code(err) != connect.CodeUnauthenticated {
					t.Errorf("%s: %v, want Unauthenticated", rpc, err)
				}
			}
		})
	}
	// Another device's token reaches only that device's own queue: Bob
	// cannot read or ack Alice's envelopes.
	aid := alice.id()
	if _, err := h.relay.Send(ctx, req(bob, &parleyv1.SendRequest{
		MessageId: messageID(1), Recipient: "alice",
		Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: aid[:], Body: envelope("for alice")}},
	})); err != nil {
		t.Fatal(err)
	}
	envs, _ := h.st.Fetch(ctx, alice.id(), 0, 10)
	if len(envs) != 1 {
		t.Fatalf("alice's queue holds %d", len(envs))
	}
	if _, err := h.relay.Ack(ctx, req(bob, &parleyv1.AckRequest{Seqs: []uint64{envs[0].Seq}})); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.st.QueueLength(ctx, alice.id()); n != 1 {
		t.Fatal("bob's ack deleted alice's envelope")
	}
	s := h.receive(bob)
	if s.next(t).GetDrained() == nil {
		t.Fatal("bob's stream showed envelopes that are not his")
	}
	// Prekeys uploaded with Bob's token are verified under Bob's key:
	// Alice's prekeys are refused.
	_, up, _ := alicePrekeys(t, alice)
	if _, err := h.dir.UploadPrekeys(ctx, req(bob, &parleyv1.UploadPrekeysRequest{Prekeys: up})); code(err) != connect.CodeInvalidArgument {
		t.Fatalf("upload of another device's prekeys: %v, want InvalidArgument", err)
	}
}

func alicePrekeys(t *testing.T, a *account) (any, *parleyv1.PrekeyUpload, error) {
	up, err := a.prekeys.Replenish(a.dev.Signing, 1)
	if err != nil {
		t.Fatal(err)
	}
	return nil, upload(up), nil
}

// TestConcurrentClaimsNeverRepeatOneTimePrekeys: many claims at once hand
// out each one-time prekey at most once, then fall back to the last-resort
// PQ key.
func TestConcurrentClaimsNeverRepeatOneTimePrekeys(t *testing.T) {
	h := newHarness(t, testConfig())
	alice, _ := h.register("alice", 1), h.register("bob", 30)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			cl, err := h.dir.ClaimBundles(ctx, req(alice, &parleyv1.ClaimBundlesRequest{Username: "bob"}))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			seen[string(cl.Msg.Bundles[0].Bundle[1+4+32+3373:][:1+4+32])]++
		})
	}
	wg.Wait()
	for k, n := range seen {
		if k[0] == 1 && n > 1 { // a one-time prekey follows
			t.Fatalf("one-time prekey handed out %d times", n)
		}
	}
}

func TestRegistrationModes(t *testing.T) {
	cfg := testConfig()
	cfg.Registration = RegistrationClosed
	h := newHarness(t, cfg)
	_, r := h.registerRequest("carol", 1)
	if _, err := h.dir.Register(context.Background(), connect.NewRequest(r)); code(err) != connect.CodePermissionDenied {
		t.Fatalf("closed: %v", err)
	}

	cfg.Registration = RegistrationInvite
	h = newHarness(t, cfg)
	ctx := context.Background()
	if err := h.st.CreateInvite(ctx, InviteHash("let-me-in"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, r = h.registerRequest("carol", 1)
	if _, err := h.dir.Register(ctx, connect.NewRequest(r)); code(err) != connect.CodePermissionDenied {
		t.Fatalf("invite mode without invite: %v", err)
	}
	r.Invite = "let-me-in"
	if _, err := h.dir.Register(ctx, connect.NewRequest(r)); err != nil {
		t.Fatalf("with invite: %v", err)
	}
	_, r = h.registerRequest("dave", 1)
	r.Invite = "let-me-in"
	if _, err := h.dir.Register(ctx, connect.NewRequest(r)); code(err) != connect.CodePermissionDenied {
		t.Fatalf("reused invite: %v", err)
	}
}

// TestRegistrationRefusesForeignDeviceList: the device list must be signed
// by its own account key, name the account and exactly the registering
// device.
func TestRegistrationRefusesForeignDeviceList(t *testing.T) {
	h := newHarness(t, testConfig())
	ctx := context.Background()
	_, r1 := h.registerRequest("erin", 1)
	_, r2 := h.registerRequest("frank", 1)
	cases := map[string]*parleyv1.RegisterRequest{
		"other account's list": {Username: "erin", SignedDeviceList: r2.SignedDeviceList, Device: r1.Device, Prekeys: r1.Prekeys},
		"other device":         {Username: "erin", SignedDeviceList: r1.SignedDeviceList, Device: r2.Device, Prekeys: r1.Prekeys},
		"foreign prekeys":      {Username: "erin", SignedDeviceList: r1.SignedDeviceList, Device: r1.Device, Prekeys: r2.Prekeys},
		"truncated list":       {Username: "erin", SignedDeviceList: r1.SignedDeviceList[:100], Device: r1.Device, Prekeys: r1.Prekeys},
		"bad username":         {Username: "er in", SignedDeviceList: r1.SignedDeviceList, Device: r1.Device, Prekeys: r1.Prekeys},
	}
	for name, r := range cases {
		if _, err := h.dir.Register(ctx, connect.NewRequest(r)); code(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if _, err := h.dir.Register(ctx, connect.NewRequest(r1)); err != nil {
		t.Fatalf("the good registration after the bad ones: %v", err)
	}
	if _, err := h.dir.Register(ctx, connect.NewRequest(r1)); code(err) != connect.CodeAlreadyExists {
		t.Fatalf("second registration: %v", err)
	}
}

// TestNewStreamDisplacesOld: one live stream per device.
func TestNewStreamDisplacesOld(t *testing.T) {
	h := newHarness(t, testConfig())
	bob := h.register("bob", 1)
	first := h.receive(bob)
	if first.next(t).GetDrained() == nil {
		t.Fatal("no drained marker")
	}
	second := h.receive(bob)
	if second.next(t).GetDrained() == nil {
		t.Fatal("no drained marker on the second stream")
	}
	select {
	case err := <-first.done:
		if code(err) != connect.CodeAborted {
			t.Fatalf("displaced stream ended with %v, want Aborted", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first stream was not displaced")
	}
}

// TestBadRequestsRefusedAndServerKeepsServing sends malformed, oversized
// and replayed requests; each gets a typed error and a normal send still
// works afterwards.
func TestBadRequestsRefusedAndServerKeepsServing(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEnvelopeSize = 1024
	h := newHarness(t, cfg)
	alice, bob := h.register("alice", 1), h.register("bob", 1)
	ctx := context.Background()
	bid := bob.id()
	send := func(id []byte, body []byte) error {
		_, err := h.relay.Send(ctx, req(alice, &parleyv1.SendRequest{
			MessageId: id, Recipient: "bob",
			Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: bid[:], Body: body}},
		}))
		return err
	}
	for name, err := range map[string]error{
		"short message id":   send([]byte{1, 2}, envelope("x")),
		"malformed envelope": send(messageID(1), []byte{9, 9, 9}),
		"truncated envelope": send(messageID(1), envelope("hello")[:4]),
		"oversized envelope": send(messageID(1), envelope(string(make([]byte, 2000)))),
	} {
		if code(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	// A replayed send (same message id) is stored once.
	id := messageID(7)
	for range 3 {
		if err := send(id, envelope("once")); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := h.st.QueueLength(ctx, bob.id()); n != 1 {
		t.Fatalf("replayed send stored %d times", n)
	}
	// Raw garbage at the HTTP level.
	resp, err := h.http.Client().Post(h.http.URL+"/parley.v1.RelayService/Send", "application/proto", bytes.NewReader([]byte{0xff, 0xff, 0xff}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("garbage request accepted")
	}
	if err := send(messageID(8), envelope("still serving")); err != nil {
		t.Fatalf("after bad input: %v", err)
	}
}

func TestRateLimitSaysWhenToRetry(t *testing.T) {
	cfg := testConfig()
	cfg.DeviceRate, cfg.DeviceBurst = 1, 2
	h := newHarness(t, cfg)
	alice := h.register("alice", 1)
	ctx := context.Background()
	var err error
	for range 5 {
		if _, err = h.dir.GetDeviceList(ctx, req(alice, &parleyv1.GetDeviceListRequest{Username: "alice"})); err != nil {
			break
		}
	}
	if code(err) != connect.CodeResourceExhausted {
		t.Fatalf("after the burst: %v, want ResourceExhausted", err)
	}
	var ce *connect.Error
	errors.As(err, &ce)
	if ce.Meta().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

func TestHealthAndMetrics(t *testing.T) {
	h := newHarness(t, testConfig())
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := h.http.Client().Get(h.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
}
