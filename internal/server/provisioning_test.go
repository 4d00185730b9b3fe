package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/provision"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// testClock is the server's clock in these tests: real time plus an offset
// the test moves forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// provHarness is a harness with a provisioning client and a clock.
type provHarness struct {
	*harness
	clock *testClock
	prov  parleyv1connect.ProvisioningServiceClient
}

// newProvHarness is newHarness with the server's clock replaced before the
// server serves (every request reads Server.now, so it is set once, here)
// and the store optionally wrapped.
func newProvHarness(t *testing.T, cfg Config, wrap func(*sqlite.Store) store.Store) *provHarness {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "parleyd.db"))
	if err != nil {
		t.Fatal(err)
	}
	var s store.Store = st
	if wrap != nil {
		s = wrap(st)
	}
	b := mem.New()
	srv, err := New(cfg, s, b)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{}
	srv.now = clock.now
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	h := &harness{t: t, srv: srv, st: st, http: hs}
	c := hs.Client()
	h.auth = parleyv1connect.NewAuthServiceClient(c, hs.URL)
	h.dir = parleyv1connect.NewDirectoryServiceClient(c, hs.URL)
	h.relay = parleyv1connect.NewRelayServiceClient(c, hs.URL)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
		if err := st.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
		_ = b.Close()
	})
	return &provHarness{harness: h, clock: clock, prov: parleyv1connect.NewProvisioningServiceClient(c, hs.URL)}
}

// newDevice is a new device N with its offer.
type newDevice struct {
	keys   *identity.DeviceKeys
	offer  *provision.Offer
	secret *provision.OfferSecret
}

func (h *provHarness) newDevice(name string) *newDevice {
	h.t.Helper()
	k := identity.GenerateDeviceKeys()
	o, s, err := provision.NewOffer(k.Public(), name, h.clock.now())
	if err != nil {
		h.t.Fatal(err)
	}
	return &newDevice{keys: k, offer: o, secret: s}
}

func (n *newDevice) addr() []byte { a := n.offer.Address(); return a[:] }

// putOffer uploads n's offer, without a token, as N does.
func (h *provHarness) putOffer(n *newDevice) *parleyv1.PutOfferResponse {
	h.t.Helper()
	resp, err := h.prov.PutOffer(context.Background(), connect.NewRequest(&parleyv1.PutOfferRequest{Offer: n.offer.Marshal()}))
	if err != nil {
		h.t.Fatalf("PutOffer: %v", err)
	}
	return resp.Msg
}

func (h *provHarness) putFrame(a *account, addr []byte, index uint32, frame []byte) error {
	_, err := h.prov.PutFrame(context.Background(), req(a, &parleyv1.PutFrameRequest{Address: addr, Index: index, Frame: frame}))
	return err
}

// frameStream is an open ReceiveFrames stream read in the background.
type frameStream struct {
	*bgStream[parleyv1.ReceiveFramesResponse]
}

// receiveFrames opens a stream without a token, as N does.
func (h *provHarness) receiveFrames(addr []byte, from uint32) *frameStream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := h.prov.ReceiveFrames(ctx, connect.NewRequest(&parleyv1.ReceiveFramesRequest{Address: addr, From: from}))
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	return &frameStream{readInBackground(h.t, s, cancel)}
}

// end waits for the stream to end and returns its error code.
func (s *frameStream) end(t *testing.T) connect.Code {
	t.Helper()
	select {
	case f := <-s.items:
		t.Fatalf("frame %d where the end of the stream was due", f.Index)
	case err := <-s.done:
		if err == nil {
			t.Fatal("frame stream ended without an error")
		}
		return code(err)
	case <-time.After(10 * time.Second):
		t.Fatal("frame stream did not end within 10s")
	}
	return 0
}

// quiet checks that no frame arrives for a moment.
func (s *frameStream) quiet(t *testing.T) {
	t.Helper()
	select {
	case f := <-s.items:
		t.Fatalf("unexpected frame %d", f.Index)
	case err := <-s.done:
		t.Fatalf("frame stream ended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}

func wantCode(t *testing.T, what string, err error, want connect.Code) {
	t.Helper()
	if got := code(err); got != want {
		t.Fatalf("%s: %v (code %v), want %v", what, err, got, want)
	}
}

func randomAddress() []byte {
	a := make([]byte, provision.AddressSize)
	primitives.Random(a)
	return a
}

// approve is E's side of §9.7: parse the code, fetch and verify the offer,
// sign list v2 adding N, and build the whole transfer.
func (h *provHarness) approve(e *account, code string, contacts, messages int) [][]byte {
	h.t.Helper()
	t := h.t
	addr, err := provision.ParseCode(code)
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.prov.GetOffer(context.Background(), req(e, &parleyv1.GetOfferRequest{Address: addr[:]}))
	if err != nil {
		t.Fatalf("GetOffer: %v", err)
	}
	o, err := provision.VerifyOffer(addr, got.Msg.Offer, provision.MaxOfferAge, time.Now())
	if err != nil {
		t.Fatalf("VerifyOffer: %v", err)
	}
	devs := []identity.DeviceEntry{
		{Device: e.dev.Public(), Name: "test", Added: 1},
		{Device: o.Device(), Name: o.Name(), Added: uint64(time.Now().Unix())},
	}
	slices.SortFunc(devs, func(a, b identity.DeviceEntry) int {
		x, y := a.Device.ID(), b.Device.ID()
		return bytes.Compare(x[:], y[:])
	})
	v2, err := identity.SignDeviceList(e.key, &identity.DeviceList{Account: e.name, Version: 2, Prev: e.list.Hash(), Devices: devs})
	if err != nil {
		t.Fatal(err)
	}
	var cs []provision.Contact
	for i := range contacts {
		name := fmt.Sprintf("contact%d", i)
		k := identity.GenerateAccountKey()
		l, err := identity.SignDeviceList(k, &identity.DeviceList{Account: name, Version: 1,
			Devices: []identity.DeviceEntry{{Device: identity.GenerateDeviceKeys().Public(), Name: "d"}}})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, provision.Contact{Username: name, List: l, Added: time.UnixMilli(1_700_000_000_000 + int64(i))})
	}
	ms := make([]provision.HistoryMessage, messages)
	for i := range ms {
		ms[i].ID[0], ms[i].ID[1] = byte(i>>8), byte(i)
		ms[i].Conversation, ms[i].Sender = "bob", "bob"
		ms[i].Sent = time.UnixMilli(1_700_000_000_000 + int64(i))
		ms[i].Received = ms[i].Sent
		ms[i].Body = bytes.Repeat([]byte{byte(i)}, 200)
	}
	s := provision.NewSender(o)
	var frames [][]byte
	add := func(f []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	add(s.Account(&provision.Account{Username: e.name, Server: h.http.URL, Key: e.key, List: v2,
		Contacts: uint32(len(cs)), Messages: uint32(len(ms))}))
	for len(cs) > 0 {
		n := provision.FitContacts(cs)
		add(s.Contacts(cs[:n]))
		cs = cs[n:]
	}
	for len(ms) > 0 {
		n := provision.FitHistory(ms)
		add(s.History(ms[:n]))
		ms = ms[n:]
	}
	add(s.End())
	return frames
}

// TestProvisioningRelaysALinkTransfer runs §9.7 end to end over the
// relay: N uploads its offer and waits for frames without a token; E, an
// authenticated device, fetches and verifies the offer and posts the
// transfer; N opens every frame in order, finishes and closes the mailbox.
func TestProvisioningRelaysALinkTransfer(t *testing.T) {
	h := newProvHarness(t, testConfig(), nil)
	e := h.register("alice", 5)
	n := h.newDevice("phone")

	put := h.putOffer(n)
	if !bytes.Equal(put.Address, n.addr()) {
		t.Fatalf("PutOffer address = %x, want the offer's %x", put.Address, n.addr())
	}
	if d := time.Unix(put.ExpiresUnix, 0).Sub(h.clock.now()); d < provision.MaxOfferAge-2*time.Second || d > provision.MaxOfferAge {
		t.Errorf("PutOffer expires in %v, want MailboxTTL (%v)", d, provision.MaxOfferAge)
	}
	// N listens before any frame exists: the stream must wait, then wake.
	stream := h.receiveFrames(n.addr(), 0)
	stream.quiet(t)

	// 2 contacts and 600 messages: account, contacts, two history frames,
	// end — more than one page of a stream's reads.
	frames := h.approve(e, n.offer.Code(), 2, 600)
	if len(frames) != 5 {
		t.Fatalf("transfer has %d frames, want 5", len(frames))
	}
	for i, f := range frames {
		if err := h.putFrame(e, n.addr(), uint32(i), f); err != nil {
			t.Fatalf("PutFrame(%d): %v", i, err)
		}
	}

	r := provision.NewReceiver(n.secret, e.name)
	contacts, messages := 0, 0
	for i := range frames {
		f := stream.next(t)
		if f.Index != uint32(i) {
			t.Fatalf("frame index %d, want %d", f.Index, i)
		}
		v, err := r.Open(f.Frame)
		if err != nil {
			t.Fatalf("Open(frame %d): %v", i, err)
		}
		switch v := v.(type) {
		case []provision.Contact:
			contacts += len(v)
		case []provision.HistoryMessage:
			messages += len(v)
		}
	}
	if err := r.Finish(); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if contacts != 2 || messages != 600 {
		t.Errorf("received %d contacts and %d messages, want 2 and 600", contacts, messages)
	}
	stream.quiet(t)

	// A reader that joins late gets every frame from its index.
	late := h.receiveFrames(n.addr(), 2)
	for i := 2; i < len(frames); i++ {
		if f := late.next(t); f.Index != uint32(i) || !bytes.Equal(f.Frame, frames[i]) {
			t.Fatalf("late reader got frame %d, want %d as posted", f.Index, i)
		}
	}

	// N is done: it closes the mailbox, which ends every stream of it.
	if _, err := h.prov.CloseMailbox(context.Background(), connect.NewRequest(&parleyv1.CloseMailboxRequest{Address: n.addr()})); err != nil {
		t.Fatalf("CloseMailbox: %v", err)
	}
	if c := stream.end(t); c != connect.CodeNotFound {
		t.Errorf("stream of a closed mailbox ended with %v, want NotFound", c)
	}
	if c := late.end(t); c != connect.CodeNotFound {
		t.Errorf("late stream of a closed mailbox ended with %v, want NotFound", c)
	}
	_, err := h.prov.GetOffer(context.Background(), req(e, &parleyv1.GetOfferRequest{Address: n.addr()}))
	wantCode(t, "GetOffer after CloseMailbox", err, connect.CodeNotFound)
	// Closing again is fine.
	if _, err := h.prov.CloseMailbox(context.Background(), connect.NewRequest(&parleyv1.CloseMailboxRequest{Address: n.addr()})); err != nil {
		t.Errorf("second CloseMailbox: %v", err)
	}
}

// TestLateReaderGetsEveryFrameFromItsIndex: a reader that connects after
// some frames were posted (a reconnecting N) asks for the next index it
// needs and gets exactly the frames from there, then new ones live.
func TestLateReaderGetsEveryFrameFromItsIndex(t *testing.T) {
	h := newProvHarness(t, testConfig(), nil)
	e := h.register("alice", 1)
	n := h.newDevice("phone")
	h.putOffer(n)
	for i := range 3 {
		if err := h.putFrame(e, n.addr(), uint32(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s := h.receiveFrames(n.addr(), 1)
	for i := 1; i < 3; i++ {
		if f := s.next(t); f.Index != uint32(i) || !bytes.Equal(f.Frame, []byte{byte(i)}) {
			t.Fatalf("got frame %d %x, want %d", f.Index, f.Frame, i)
		}
	}
	s.quiet(t)
	if err := h.putFrame(e, n.addr(), 3, []byte{3}); err != nil {
		t.Fatal(err)
	}
	if f := s.next(t); f.Index != 3 {
		t.Fatalf("got frame %d, want 3", f.Index)
	}
	// From past the end: nothing until a frame arrives.
	far := h.receiveFrames(n.addr(), 10)
	far.quiet(t)
}

// TestFramesOutOfOrderOrDuplicatedAreRefused: the mailbox is append-only
// at the next index, so nothing reordered or repeated reaches N; a retry
// of the last frame with the same bytes is accepted and stored once.
func TestFramesOutOfOrderOrDuplicatedAreRefused(t *testing.T) {
	h := newProvHarness(t, testConfig(), nil)
	e := h.register("alice", 1)
	n := h.newDevice("phone")
	h.putOffer(n)
	a := n.addr()

	err := h.putFrame(e, a, 1, []byte("one"))
	wantCode(t, "frame 1 first", err, connect.CodeFailedPrecondition)
	if !strings.Contains(err.Error(), "expects index 0") {
		t.Errorf("error %q does not name the expected index 0", err)
	}
	if err := h.putFrame(e, a, 0, []byte("zero")); err != nil {
		t.Fatal(err)
	}
	if err := h.putFrame(e, a, 0, []byte("zero")); err != nil {
		t.Errorf("retry of frame 0 with the same bytes: %v, want success", err)
	}
	err = h.putFrame(e, a, 0, []byte("other"))
	wantCode(t, "frame 0 again with other bytes", err, connect.CodeFailedPrecondition)
	if !strings.Contains(err.Error(), "expects index 1") {
		t.Errorf("error %q does not name the expected index 1", err)
	}
	err = h.putFrame(e, a, 2, []byte("two"))
	wantCode(t, "frame 2 after frame 0", err, connect.CodeFailedPrecondition)
	if err := h.putFrame(e, a, 1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	err = h.putFrame(e, a, 0, []byte("zero"))
	wantCode(t, "frame 0 after frame 1", err, connect.CodeFailedPrecondition)

	s := h.receiveFrames(a, 0)
	for i, want := range []string{"zero", "one"} {
		if f := s.next(t); f.Index != uint32(i) || string(f.Frame) != want {
			t.Fatalf("frame %d = %d %q, want %q", i, f.Index, f.Frame, want)
		}
	}
	s.quiet(t)
}

// TestFrameSizeLimits: a frame over provision.MaxFrameSize is malformed;
// a mailbox over MaxMailboxBytes refuses more, naming the limit.
func TestFrameSizeLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMailboxBytes = provision.MaxFrameSize + 100
	h := newProvHarness(t, cfg, nil)
	e := h.register("alice", 1)
	n := h.newDevice("phone")
	h.putOffer(n)
	a := n.addr()

	err := h.putFrame(e, a, 0, make([]byte, provision.MaxFrameSize+1))
	wantCode(t, "oversize frame", err, connect.CodeInvalidArgument)
	if !strings.Contains(err.Error(), "MaxFrameSize") {
		t.Errorf("error %q does not name MaxFrameSize", err)
	}
	wantCode(t, "empty frame", h.putFrame(e, a, 0, nil), connect.CodeInvalidArgument)
	if err := h.putFrame(e, a, 0, make([]byte, provision.MaxFrameSize)); err != nil {
		t.Fatalf("a frame of exactly MaxFrameSize: %v", err)
	}
	err = h.putFrame(e, a, 1, make([]byte, 101))
	wantCode(t, "frame over MaxMailboxBytes", err, connect.CodeResourceExhausted)
	if !strings.Contains(err.Error(), "MaxMailboxBytes") || !strings.Contains(err.Error(), fmt.Sprint(cfg.MaxMailboxBytes)) {
		t.Errorf("error %q does not name the limit", err)
	}
	if err := h.putFrame(e, a, 1, make([]byte, 100)); err != nil {
		t.Errorf("frame up to MaxMailboxBytes exactly: %v", err)
	}
}

// TestUnknownMailbox: an address that holds nothing is NotFound to every
// call that reads or writes it; closing it succeeds; a malformed address
// is InvalidArgument.
func TestUnknownMailbox(t *testing.T) {
	h := newProvHarness(t, testConfig(), nil)
	e := h.register("alice", 1)
	a := randomAddress()
	ctx := context.Background()
	_, err := h.prov.GetOffer(ctx, req(e, &parleyv1.GetOfferRequest{Address: a}))
	wantCode(t, "GetOffer", err, connect.CodeNotFound)
	wantCode(t, "PutFrame", h.putFrame(e, a, 0, []byte("x")), connect.CodeNotFound)
	if c := h.receiveFrames(a, 0).end(t); c != connect.CodeNotFound {
		t.Errorf("ReceiveFrames of an unknown address ended with %v, want NotFound", c)
	}
	if _, err := h.prov.CloseMailbox(ctx, connect.NewRequest(&parleyv1.CloseMailboxRequest{Address: a})); err != nil {
		t.Errorf("CloseMailbox of an unknown address: %v, want success", err)
	}
	for _, bad := range [][]byte{nil, a[:15], append(a, 0)} {
		_, err := h.prov.GetOffer(ctx, req(e, &parleyv1.GetOfferRequest{Address: bad}))
		wantCode(t, fmt.Sprintf("GetOffer of a %d-byte address", len(bad)), err, connect.CodeInvalidArgument)
		_, err = h.prov.CloseMailbox(ctx, connect.NewRequest(&parleyv1.CloseMailboxRequest{Address: bad}))
		wantCode(t, fmt.Sprintf("CloseMailbox of a %d-byte address", len(bad)), err, connect.CodeInvalidArgument)
	}
}

// TestMailboxExpiry: a mailbox without frames lives MailboxTTL; each frame
// gives it MailboxIdleTTL from then; once expired it is NotFound even
// before the sweep deletes it, and the sweep ends its waiting streams.
func TestMailboxExpiry(t *testing.T) {
	cfg := testConfig()
	cfg.TokenTTL = 24 * time.Hour
	cfg.MailboxIdleTTL = 20 * time.Minute
	h := newProvHarness(t, cfg, nil)
	e := h.register("alice", 1)
	ctx := context.Background()
	getOffer := func(n *newDevice) error {
		_, err := h.prov.GetOffer(ctx, req(e, &parleyv1.GetOfferRequest{Address: n.addr()}))
		return err
	}

	// Unused: gone after MailboxTTL.
	idle := h.newDevice("idle")
	h.putOffer(idle)
	// Used: the first frame extends it.
	used := h.newDevice("used")
	h.putOffer(used)
	h.clock.advance(5 * time.Minute)
	if err := h.putFrame(e, used.addr(), 0, []byte("f")); err != nil {
		t.Fatal(err)
	}
	waiting := h.receiveFrames(idle.addr(), 0)
	h.clock.advance(5*time.Minute + 2*time.Second) // 10 min 2 s after the offers
	wantCode(t, "GetOffer after MailboxTTL", getOffer(idle), connect.CodeNotFound)
	wantCode(t, "PutFrame after MailboxTTL", h.putFrame(e, idle.addr(), 0, []byte("f")), connect.CodeNotFound)
	if err := getOffer(used); err != nil {
		t.Fatalf("a mailbox with a frame 5 minutes ago expired with the offer's TTL: %v", err)
	}
	// The sweep deletes the expired mailbox and ends its stream.
	h.srv.expireMailboxes(ctx)
	if c := waiting.end(t); c != connect.CodeNotFound {
		t.Errorf("stream of an expired mailbox ended with %v, want NotFound", c)
	}
	if _, err := h.st.Mailbox(ctx, store.MailboxAddress(idle.addr())); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired mailbox still stored after the sweep: %v", err)
	}
	if _, err := h.st.Mailbox(ctx, store.MailboxAddress(used.addr())); err != nil {
		t.Errorf("the sweep deleted a live mailbox: %v", err)
	}

	// Each frame gives MailboxIdleTTL from then.
	h.clock.advance(10 * time.Minute) // 15 min after the frame
	if err := h.putFrame(e, used.addr(), 1, []byte("g")); err != nil {
		t.Fatalf("PutFrame 15 minutes after the last: %v", err)
	}
	h.clock.advance(19 * time.Minute)
	if err := getOffer(used); err != nil {
		t.Fatalf("19 minutes after the last frame: %v", err)
	}
	h.clock.advance(2 * time.Minute)
	wantCode(t, "GetOffer 21 minutes after the last frame", getOffer(used), connect.CodeNotFound)
	if c := h.receiveFrames(used.addr(), 0).end(t); c != connect.CodeNotFound {
		t.Errorf("ReceiveFrames of an expired mailbox ended with %v, want NotFound", c)
	}
}

// TestUnauthenticatedCallsReachNothingElse: the calls a new device makes
// without a token are exactly PutOffer, ReceiveFrames and CloseMailbox;
// fetching an offer or writing a frame needs a token, and the mailbox
// capability opens nothing else.
func TestUnauthenticatedCallsReachNothingElse(t *testing.T) {
	h := newProvHarness(t, testConfig(), nil)
	e := h.register("alice", 1)
	n := h.newDevice("phone")
	h.putOffer(n)
	ctx := context.Background()
	_, err := h.prov.GetOffer(ctx, connect.NewRequest(&parleyv1.GetOfferRequest{Address: n.addr()}))
	wantCode(t, "GetOffer without a token", err, connect.CodeUnauthenticated)
	_, err = h.prov.PutFrame(ctx, connect.NewRequest(&parleyv1.PutFrameRequest{Address: n.addr(), Frame: []byte("f")}))
	wantCode(t, "PutFrame without a token", err, connect.CodeUnauthenticated)
	forged := &account{token: "forged"}
	_, err = h.prov.PutFrame(ctx, req(forged, &parleyv1.PutFrameRequest{Address: n.addr(), Frame: []byte("f")}))
	wantCode(t, "PutFrame with a forged token", err, connect.CodeUnauthenticated)
	_, err = h.relay.Ack(ctx, connect.NewRequest(&parleyv1.AckRequest{Seqs: []uint64{1}}))
	wantCode(t, "Ack without a token", err, connect.CodeUnauthenticated)
	_, err = h.dir.ClaimBundles(ctx, connect.NewRequest(&parleyv1.ClaimBundlesRequest{Username: e.name}))
	wantCode(t, "ClaimBundles without a token", err, connect.CodeUnauthenticated)
	// Nothing was written by the refused calls.
	if m, err := h.st.Mailbox(ctx, store.MailboxAddress(n.addr())); err != nil || m.Frames != 0 {
		t.Errorf("mailbox after refused writes = %+v, %v; want no frames", m, err)
	}
}

// TestGarbageOffersRefused: PutOffer parses the offer strictly, so nothing
// but a well-formed offer gets a mailbox.
func TestGarbageOffersRefused(t *testing.T) {
	h := newProvHarness(t, testConfig(), nil)
	n := h.newDevice("phone")
	good := n.offer.Marshal()
	random := make([]byte, len(good))
	primitives.Random(random)
	version := slices.Clone(good)
	version[0] = 2
	for name, offer := range map[string][]byte{
		"empty":          nil,
		"random bytes":   random,
		"truncated":      good[:len(good)-1],
		"trailing byte":  append(slices.Clone(good), 0),
		"version 2":      version,
		"only a version": good[:1],
	} {
		_, err := h.prov.PutOffer(context.Background(), connect.NewRequest(&parleyv1.PutOfferRequest{Offer: offer}))
		wantCode(t, "PutOffer of "+name, err, connect.CodeInvalidArgument)
	}
	h.putOffer(n)
}

// TestSameOfferTwiceAlreadyExists: one mailbox per offer; a retried upload
// is told the mailbox exists.
func TestSameOfferTwiceAlreadyExists(t *testing.T) {
	h := newProvHarness(t, testConfig(), nil)
	n := h.newDevice("phone")
	h.putOffer(n)
	_, err := h.prov.PutOffer(context.Background(), connect.NewRequest(&parleyv1.PutOfferRequest{Offer: n.offer.Marshal()}))
	wantCode(t, "second PutOffer", err, connect.CodeAlreadyExists)
}

// TestMailboxProbingIsRateLimitedPerIP: creating mailboxes and looking up
// addresses that hold none draw on one per-IP bucket; a lookup that finds
// a mailbox does not.
func TestMailboxProbingIsRateLimitedPerIP(t *testing.T) {
	cfg := testConfig()
	cfg.MailboxIPRate = rate.Every(time.Hour)
	cfg.MailboxIPBurst = 3
	h := newProvHarness(t, cfg, nil)
	e := h.register("alice", 1)
	ctx := context.Background()
	n := h.newDevice("phone")
	h.putOffer(n) // 1
	for range 5 {
		if _, err := h.prov.GetOffer(ctx, req(e, &parleyv1.GetOfferRequest{Address: n.addr()})); err != nil {
			t.Fatalf("GetOffer of an existing mailbox: %v", err)
		}
	}
	_, err := h.prov.GetOffer(ctx, req(e, &parleyv1.GetOfferRequest{Address: randomAddress()})) // 2
	wantCode(t, "first miss", err, connect.CodeNotFound)
	if c := h.receiveFrames(randomAddress(), 0).end(t); c != connect.CodeNotFound { // 3
		t.Fatalf("second miss ended with %v, want NotFound", c)
	}
	_, err = h.prov.GetOffer(ctx, req(e, &parleyv1.GetOfferRequest{Address: randomAddress()}))
	wantCode(t, "miss over the limit", err, connect.CodeResourceExhausted)
	var ce *connect.Error
	if errors.As(err, &ce) {
		found := false
		for _, d := range ce.Details() {
			if v, err := d.Value(); err == nil {
				if rl, ok := v.(*parleyv1.RateLimited); ok && rl.Limit == ipLimitMailbox {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("rate-limited miss without a RateLimited detail naming %q", ipLimitMailbox)
		}
	}
	_, err = h.prov.PutOffer(ctx, connect.NewRequest(&parleyv1.PutOfferRequest{Offer: h.newDevice("x").offer.Marshal()}))
	wantCode(t, "PutOffer over the limit", err, connect.CodeResourceExhausted)
}

// TestShutdownEndsWaitingReceiveFrames: a stream waiting for frames ends
// with Unavailable at Shutdown, which waits for it.
func TestShutdownEndsWaitingReceiveFrames(t *testing.T) {
	h := newProvHarness(t, testConfig(), nil)
	e := h.register("alice", 1)
	n := h.newDevice("phone")
	h.putOffer(n)
	s := h.receiveFrames(n.addr(), 0)
	// A frame through the stream shows that it is established and waiting.
	if err := h.putFrame(e, n.addr(), 0, []byte("f")); err != nil {
		t.Fatal(err)
	}
	s.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (a frame stream did not end)", err)
	}
	if c := s.end(t); c != connect.CodeUnavailable {
		t.Errorf("frame stream ended with %v at shutdown, want Unavailable", c)
	}
}

// storeWithoutMailboxes hides the Mailboxes methods of a store.
type storeWithoutMailboxes struct{ store.Store }

// TestProvisioningUnimplementedWithoutMailboxStore: on a store that keeps
// no mailboxes, every provisioning call says so.
func TestProvisioningUnimplementedWithoutMailboxStore(t *testing.T) {
	h := newProvHarness(t, testConfig(), func(st *sqlite.Store) store.Store { return storeWithoutMailboxes{st} })
	e := h.register("alice", 1)
	n := h.newDevice("phone")
	ctx := context.Background()
	_, err := h.prov.PutOffer(ctx, connect.NewRequest(&parleyv1.PutOfferRequest{Offer: n.offer.Marshal()}))
	wantCode(t, "PutOffer", err, connect.CodeUnimplemented)
	if !strings.Contains(err.Error(), "device linking is not available") {
		t.Errorf("error %q does not say linking is unavailable", err)
	}
	_, err = h.prov.GetOffer(ctx, req(e, &parleyv1.GetOfferRequest{Address: n.addr()}))
	wantCode(t, "GetOffer", err, connect.CodeUnimplemented)
	wantCode(t, "PutFrame", h.putFrame(e, n.addr(), 0, []byte("f")), connect.CodeUnimplemented)
	_, err = h.prov.CloseMailbox(ctx, connect.NewRequest(&parleyv1.CloseMailboxRequest{Address: n.addr()}))
	wantCode(t, "CloseMailbox", err, connect.CodeUnimplemented)
	if c := h.receiveFrames(n.addr(), 0).end(t); c != connect.CodeUnimplemented {
		t.Errorf("ReceiveFrames ended with %v, want Unimplemented", c)
	}
}

// TestRacingApproversGetOneFramePerIndex: two devices that both know the
// code post different frames at the same indexes at once; each index ends
// up with exactly one of them, the loser is told the index is taken, and
// the reader sees one frame per index.
func TestRacingApproversGetOneFramePerIndex(t *testing.T) {
	h := newProvHarness(t, testConfig(), nil)
	e1, e2 := h.register("alice", 1), h.register("mallory", 1)
	n := h.newDevice("phone")
	h.putOffer(n)
	const frames = 10
	for i := range uint32(frames) {
		errs := make(chan error, 2)
		for _, e := range []*account{e1, e2} {
			go func() { errs <- h.putFrame(e, n.addr(), i, []byte(e.name+fmt.Sprint(i))) }()
		}
		won := 0
		for range 2 {
			switch err := <-errs; code(err) {
			case connect.CodeUnknown:
				if err != nil {
					t.Fatalf("PutFrame(%d): %v", i, err)
				}
				won++
			case connect.CodeFailedPrecondition:
			default:
				t.Fatalf("PutFrame(%d): %v", i, err)
			}
		}
		if won != 1 {
			t.Fatalf("index %d: %d writers succeeded, want exactly 1", i, won)
		}
	}
	s := h.receiveFrames(n.addr(), 0)
	for i := range uint32(frames) {
		if f := s.next(t); f.Index != i {
			t.Fatalf("frame index %d, want %d", f.Index, i)
		}
	}
	s.quiet(t)
}

// TestProvisioningLeavesNoGoroutines opens frame streams that end every way
// a stream ends (the mailbox closed, the client gone, an unknown address,
// shutdown), shuts everything down and waits for the process's goroutine
// count to come back.
func TestProvisioningLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newProvHarness(t, testConfig(), nil)
	e := h.register("alice", 1)
	closed, gone, left := h.newDevice("a"), h.newDevice("b"), h.newDevice("c")
	for _, n := range []*newDevice{closed, gone, left} {
		h.putOffer(n)
		if err := h.putFrame(e, n.addr(), 0, []byte("f")); err != nil {
			t.Fatal(err)
		}
	}
	s1, s2, s3 := h.receiveFrames(closed.addr(), 0), h.receiveFrames(gone.addr(), 0), h.receiveFrames(left.addr(), 0)
	for _, s := range []*frameStream{s1, s2, s3} {
		s.next(t)
	}
	if _, err := h.prov.CloseMailbox(context.Background(), connect.NewRequest(&parleyv1.CloseMailboxRequest{Address: closed.addr()})); err != nil {
		t.Fatal(err)
	}
	s1.end(t)
	s2.cancel()
	<-s2.done
	h.receiveFrames(randomAddress(), 0).end(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s3.end(t)
	h.http.Close()
	if err := h.st.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines before, %d after shutdown:\n%s", before, runtime.NumGoroutine(), buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
