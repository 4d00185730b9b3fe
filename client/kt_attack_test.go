package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
	"github.com/parleyim/parley/internal/primitives"
)

// A lying server (docs/client.md §10): lyingTransport sits between a client
// and the real server and rewrites chosen responses, the way a server (or
// someone in its place) that wants to show one person something else would.
// Each test is named after the attack and asserts the typed security error.

const (
	procGetDeviceList = "/parley.v1.DirectoryService/GetDeviceList"
	procMonitor       = "/parley.v1.TransparencyService/Monitor"
	procGetHead       = "/parley.v1.TransparencyService/GetHead"
)

// lyingTransport rewrites the unary responses of the procedures it has a
// rule for; everything else passes through.
type lyingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	// rules by procedure path: the response body (protobuf) in, the one
	// to send out.
	rules map[string]func(t *testing.T, body []byte) []byte
	t     *testing.T
}

func (lt *lyingTransport) set(proc string, fn func(t *testing.T, body []byte) []byte) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if fn == nil {
		delete(lt.rules, proc)
		return
	}
	lt.rules[proc] = fn
}

func (lt *lyingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	lt.mu.Lock()
	rule := lt.rules[req.URL.Path]
	lt.mu.Unlock()
	if rule == nil {
		return lt.base.RoundTrip(req)
	}
	// Plain bodies, so that the rule sees protobuf.
	req = req.Clone(req.Context())
	req.Header.Del("Accept-Encoding")
	req.Header.Del("Connect-Accept-Encoding")
	resp, err := lt.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = rule(lt.t, body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp, nil
}

// rewrite decodes a response of type M, lets fn change it and re-encodes it.
func rewrite[M any, PM interface {
	*M
	proto.Message
}](fn func(t *testing.T, m PM)) func(t *testing.T, body []byte) []byte {
	return func(t *testing.T, body []byte) []byte {
		m := PM(new(M))
		if err := proto.Unmarshal(body, m); err != nil {
			t.Errorf("lying transport: %v", err)
			return body
		}
		fn(t, m)
		out, err := proto.Marshal(m)
		if err != nil {
			t.Errorf("lying transport: %v", err)
			return body
		}
		return out
	}
}

// registerLying registers name with a lying transport in front of the
// server (no rules yet) and options adjusted by opt.
func (ts *testServer) registerLying(t *testing.T, name string, opt func(*Options)) (*Client, *lyingTransport) {
	t.Helper()
	lt := &lyingTransport{base: ts.hs.Client().Transport, rules: map[string]func(*testing.T, []byte) []byte{}, t: t}
	opts := Options{Insecure: true, HTTPClient: &http.Client{Transport: lt}, DeviceName: name + "-laptop"}
	if opt != nil {
		opt(&opts)
	}
	c, err := Register(context.Background(), t.TempDir(), ts.url, name, opts)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, lt
}

// ktKind asserts that err is a *SecurityError (matching ErrSecurity, and not
// a network error) wrapping a *verify.Error of one of the kinds.
func ktKind(t *testing.T, err error, kinds ...verify.Kind) *verify.Error {
	t.Helper()
	var se *SecurityError
	var ve *verify.Error
	var srv *ServerError
	if !errors.Is(err, ErrSecurity) || !errors.As(err, &se) || !errors.As(err, &ve) || errors.As(err, &srv) {
		t.Fatalf("got %v, want a key-transparency security error", err)
	}
	for _, k := range kinds {
		if ve.Kind == k {
			t.Logf("detected: %v", err)
			return ve
		}
	}
	t.Fatalf("got kind %v (%v), want one of %v", ve.Kind, err, kinds)
	return nil
}

// waitSequenced waits until name's greatest logged version is at least v
// (a KT version), verifying each answer as a lookup does and keeping the
// checkpoint in c.
func waitSequenced(t *testing.T, c *Client, name string, v uint32) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		resp, err := c.authedGet(ctx, &parleyv1.GetDeviceListRequest{Username: name, KtFromSize: c.fromSize()})
		var found *verify.Found
		if err == nil {
			var tr *verify.Trusted
			if tr, err = c.verifyHead("head", resp.KtHead); err == nil {
				var p *kt.SearchProof
				if p, err = kt.UnmarshalSearchProof(resp.KtSearch); err == nil {
					if found, err = c.kt.VerifySearch(tr, name, p); err == nil || errors.Is(err, verify.ErrNotFound) {
						err = c.commitTrusted(ctx, tr)
					}
				}
			}
		}
		c.mu.Unlock()
		if err != nil {
			t.Fatalf("waiting for %s version %d: %v", name, v, err)
		}
		if found != nil && found.Greatest >= v {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s version %d not sequenced in time", name, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeySubstitutionInLookupDetected: the server answers alice's first
// lookup of bob with mallory's device list (mallory's account key and
// device, named "bob"). Served as kt_value, it is not the value the search
// proof opens; with the proof's value swapped too, it does not open the
// logged commitment. Either way KeySubstituted, and nothing is sent.
func TestKeySubstitutionInLookupDetected(t *testing.T) {
	ts := newTestServer(t)
	alice, lt := ts.registerLying(t, "alice", nil)
	bob := ts.register(t, "bob")
	waitSequenced(t, bob, "bob", 0)

	mallory := identity.GenerateAccountKey()
	dev := identity.GenerateDeviceKeys().Public()
	fake, err := identity.SignDeviceList(mallory, &identity.DeviceList{Account: "bob", Version: 1,
		Devices: []identity.DeviceEntry{{Device: dev, Name: "bob-laptop", Added: uint64(time.Now().Unix())}}})
	if err != nil {
		t.Fatal(err)
	}
	// 1: the list and kt_value swapped, the proof left alone.
	lt.set(procGetDeviceList, rewrite(func(t *testing.T, m *parleyv1.GetDeviceListResponse) {
		if len(m.KtValue) > 0 {
			m.SignedDeviceList, m.KtValue = fake.Marshal(), fake.Marshal()
		}
	}))
	_, err = alice.Send(context.Background(), "bob", "for bob only")
	ktKind(t, err, verify.KeySubstituted)

	// 2: the value inside the search proof swapped as well.
	lt.set(procGetDeviceList, rewrite(func(t *testing.T, m *parleyv1.GetDeviceListResponse) {
		p, err := kt.UnmarshalSearchProof(m.KtSearch)
		if err != nil || !p.Found {
			return
		}
		p.Value = fake.Marshal()
		if m.KtSearch, err = p.Marshal(); err != nil {
			t.Error(err)
		}
		m.SignedDeviceList, m.KtValue = fake.Marshal(), fake.Marshal()
	}))
	_, err = alice.Send(context.Background(), "bob", "for bob only")
	ktKind(t, err, verify.KeySubstituted)

	lt.set(procGetDeviceList, nil)
	if _, err := alice.Send(context.Background(), "bob", "the real bob"); err != nil {
		t.Fatalf("send once the server stops lying: %v", err)
	}
	if got := drain(t, bob); len(got) != 1 || got[0].Text != "the real bob" {
		t.Fatalf("bob got %+v", got)
	}
}

// TestHiddenExtraDeviceDetected: the operator logs a device list for bob
// with a device of its own (under its own account key, since it cannot sign
// with bob's), so that people who look bob up for the first time encrypt to
// it, while it keeps serving bob his own list. Bob's monitoring finds the
// version he cannot account for and reports it, with the logged list; a
// contact who knew bob refuses the new key.
func TestHiddenExtraDeviceDetected(t *testing.T) {
	ts, alice, bob := attackSetup(t)
	waitSequenced(t, alice, "bob", 0)
	if err := bob.MonitorAccount(context.Background()); err != nil {
		t.Fatalf("monitor before the attack: %v", err)
	}

	rogue := identity.GenerateAccountKey()
	spy := identity.GenerateDeviceKeys().Public()
	cur, err := identity.ParseSignedDeviceList(bob.mustOwnList(t))
	if err != nil {
		t.Fatal(err)
	}
	curList, _ := cur.Verify(nil)
	fake, err := identity.SignDeviceList(rogue, &identity.DeviceList{Account: "bob", Version: curList.Version + 1, Prev: cur.Hash(),
		Devices: append(curList.Devices, identity.DeviceEntry{Device: spy, Name: "bob-tablet", Added: uint64(time.Now().Unix())})})
	if err != nil {
		t.Fatal(err)
	}
	ts.injectList(t, "bob", fake.Marshal(), append(devicesOf(curList), spy)...)

	// Carol, new to bob, is shown the logged list (that is what the log
	// is for: everyone sees the same); bob finds it in his monitor.
	deadline := time.Now().Add(20 * time.Second)
	var alert *verify.Error
	for alert == nil {
		err := bob.MonitorAccount(context.Background())
		if err != nil {
			alert = ktKind(t, err, verify.UnexpectedVersion)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rogue version was never reported")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !bytes.Equal(alert.Value, fake.Marshal()) || alert.Version != uint32(curList.Version) {
		t.Fatalf("the alert names version %d with %d bytes, want the rogue list as version %d", alert.Version, len(alert.Value), curList.Version)
	}
	// The alert stays until someone acts on it.
	ktKind(t, bob.MonitorAccount(context.Background()), verify.UnexpectedVersion)
	// Receive reports it as an event and carries on.
	if k := kinds(events(t, bob)); k[EventKeyTransparencyAlert] != 1 || k[EventDrained] != 1 {
		t.Fatalf("bob's events: %v", k)
	}
	// Alice, who knew bob's key, refuses the new one.
	if _, err := alice.Send(context.Background(), "bob", "secret"); !errors.Is(err, ErrSecurity) || !errors.Is(err, identity.ErrAccountKeyChanged) {
		t.Fatalf("alice's send: %v, want a refused account key change", err)
	}
}

// TestStaleDeviceListServedAsLatestDetected: bob removes a device (say, a
// stolen one); the server goes on serving alice the list that still names
// it. As signed_device_list beside the current proofs: StaleLatest. As a
// whole earlier response replayed after alice verified a newer log:
// Rollback.
func TestStaleDeviceListServedAsLatestDetected(t *testing.T) {
	ts := newTestServer(t)
	alice, lt := ts.registerLying(t, "alice", nil)
	bob := ts.register(t, "bob")
	bob2 := ts.link(t, bob, "bob-phone")
	waitSequenced(t, bob, "bob", 1)

	var mu sync.Mutex
	var old *parleyv1.GetDeviceListResponse
	lt.set(procGetDeviceList, rewrite(func(t *testing.T, m *parleyv1.GetDeviceListResponse) {
		mu.Lock()
		defer mu.Unlock()
		if old == nil && len(m.KtValue) > 0 {
			old = proto.Clone(m).(*parleyv1.GetDeviceListResponse)
		}
	}))
	if _, err := alice.Send(context.Background(), "bob", "to both of bob's devices"); err != nil {
		t.Fatal(err)
	}
	if err := bob.RemoveDevice(context.Background(), bob2.DeviceID()); err != nil {
		t.Fatal(err)
	}
	waitSequenced(t, bob, "bob", 2)

	// 1: the list before the removal, with the current proofs.
	lt.set(procGetDeviceList, rewrite(func(t *testing.T, m *parleyv1.GetDeviceListResponse) {
		mu.Lock()
		defer mu.Unlock()
		m.SignedDeviceList = old.SignedDeviceList
	}))
	alice.mu.Lock()
	_, err := alice.devices(context.Background(), "bob", true)
	alice.mu.Unlock()
	ktKind(t, err, verify.StaleLatest)

	// 2: the whole earlier response, after alice saw a newer log.
	lt.set(procGetDeviceList, nil)
	waitSequenced(t, alice, "bob", 2)
	lt.set(procGetDeviceList, rewrite(func(t *testing.T, m *parleyv1.GetDeviceListResponse) {
		mu.Lock()
		defer mu.Unlock()
		proto.Reset(m)
		proto.Merge(m, old)
	}))
	alice.mu.Lock()
	_, err = alice.devices(context.Background(), "bob", true)
	alice.mu.Unlock()
	ktKind(t, err, verify.Rollback)
}

// TestLogRolledBackDetected: after alice verified the log at some size,
// the server answers with a smaller log (it restored a backup, or wants to
// forget an epoch): Rollback, whether in a lookup or in her monitoring;
// her trusted checkpoint does not move back.
func TestLogRolledBackDetected(t *testing.T) {
	ts := newTestServer(t)
	alice, lt := ts.registerLying(t, "alice", nil)
	bob := ts.register(t, "bob")
	waitSequenced(t, alice, "bob", 0)
	var first []byte
	lt.set(procGetDeviceList, rewrite(func(t *testing.T, m *parleyv1.GetDeviceListResponse) {
		if first == nil {
			first = bytes.Clone(m.KtHead)
		}
	}))
	waitSequenced(t, alice, "bob", 0)
	// The log grows (bob adds a device), and alice verifies it.
	ts.link(t, bob, "bob-phone")
	waitSequenced(t, alice, "bob", 1)
	size := alice.fromSize()

	lt.set(procGetDeviceList, rewrite(func(t *testing.T, m *parleyv1.GetDeviceListResponse) { m.KtHead = first }))
	alice.mu.Lock()
	_, err := alice.devices(context.Background(), "bob", true)
	alice.mu.Unlock()
	ktKind(t, err, verify.Rollback)
	lt.set(procMonitor, rewrite(func(t *testing.T, m *parleyv1.MonitorResponse) { m.Head = first }))
	ktKind(t, alice.MonitorAccount(context.Background()), verify.Rollback)
	if alice.fromSize() != size {
		t.Fatalf("the trusted checkpoint moved from %d to %d", size, alice.fromSize())
	}
}

// TestCheckpointWithoutCosignaturesRejected: alice pins a witness policy of
// one witness (out of band, Options.LogConfig); the server's checkpoints
// carry no cosignature of it: MissingCosignatures on every lookup. Once the
// witness cosigns (here in the transport, with kt.Cosigner), the same
// responses verify.
func TestCheckpointWithoutCosignaturesRejected(t *testing.T) {
	ts := newTestServer(t)
	lc, err := FetchLogConfig(context.Background(), ts.url, ts.hs.Client())
	if err != nil {
		t.Fatal(err)
	}
	w, err := kt.NewCosigner("witness.test", primitives.GenerateEd25519(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	lc.WitnessVKeys, lc.WitnessThreshold = append(lc.WitnessVKeys, w.VerifierKey()), len(lc.WitnessVKeys)+1
	alice, lt := ts.registerLying(t, "alice", func(o *Options) { o.LogConfig = lc })
	ts.register(t, "bob")

	alice.mu.Lock()
	_, err = alice.devices(context.Background(), "bob", true)
	alice.mu.Unlock()
	ktKind(t, err, verify.MissingCosignatures)
	if alice.fromSize() != 0 {
		t.Fatal("a checkpoint without the cosignature was kept")
	}

	cosign := func(t *testing.T, raw []byte) []byte {
		h, err := kt.UnmarshalHead(raw)
		if err != nil {
			t.Error(err)
			return raw
		}
		if h.Checkpoint, err = w.Cosign(h.Checkpoint); err != nil {
			t.Error(err)
			return raw
		}
		out, err := h.Marshal()
		if err != nil {
			t.Error(err)
		}
		return out
	}
	lt.set(procGetDeviceList, rewrite(func(t *testing.T, m *parleyv1.GetDeviceListResponse) { m.KtHead = cosign(t, m.KtHead) }))
	waitSequenced(t, alice, "bob", 0)
	if alice.fromSize() == 0 {
		t.Fatal("the cosigned checkpoint was not kept")
	}
}

func devicesOf(l *identity.DeviceList) []*identity.DevicePublic {
	var out []*identity.DevicePublic
	for _, e := range l.Devices {
		out = append(out, e.Device)
	}
	return out
}

func (c *Client) mustOwnList(t *testing.T) []byte {
	t.Helper()
	id, err := c.db.Identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return id.DeviceList
}

// ktSigner returns the test server's checkpoint signer, from the keys it
// keeps in its store: what a lying operator holds.
func (ts *testServer) ktSigner(t *testing.T) *kt.CheckpointSigner {
	t.Helper()
	ctx := context.Background()
	secret := func(name string) []byte {
		b, err := ts.st.Secret(ctx, name, func() []byte { t.Fatalf("no server secret %s", name); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ek, err := primitives.NewEd25519Key(secret("kt-checkpoint-ed25519-seed-v1"))
	if err != nil {
		t.Fatal(err)
	}
	hk, err := primitives.NewSigningKey(secret("kt-checkpoint-hybrid-seed-v1"))
	if err != nil {
		t.Fatal(err)
	}
	lc, err := FetchLogConfig(ctx, ts.url, ts.hs.Client())
	if err != nil {
		t.Fatal(err)
	}
	v, err := lc.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	s, err := kt.NewCheckpointSigner(v.Origin, ek, hk)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forkHead turns a real head into one of a forked log: the same newest
// entry (so every search proof against it still verifies) on top of an
// invented history, signed with the log's keys.
func forkHead(t *testing.T, signer *kt.CheckpointSigner, raw []byte) []byte {
	h, err := kt.UnmarshalHead(raw)
	if err != nil {
		t.Error(err)
		return raw
	}
	l := kt.NewLog()
	for i := range h.Entry.Epoch {
		e := kt.LogEntry{Epoch: i, Timestamp: h.Entry.Timestamp - (h.Entry.Epoch - i), PrefixRoot: [32]byte{0xee, byte(i)}}
		if err := l.Append(e); err != nil {
			t.Error(err)
			return raw
		}
	}
	if err := l.Append(h.Entry); err != nil {
		t.Error(err)
		return raw
	}
	size := l.Size()
	root, err := l.Root(size)
	if err != nil {
		t.Error(err)
		return raw
	}
	if h.Checkpoint, err = signer.Sign(size, root); err != nil {
		t.Error(err)
		return raw
	}
	if h.Inclusion, err = l.InclusionProof(size-1, size); err != nil {
		t.Error(err)
		return raw
	}
	h.Consistency = nil
	out, err := h.Marshal()
	if err != nil {
		t.Error(err)
	}
	return out
}

// TestForkedViewsDetected: the server shows bob a forked log — validly
// signed, and consistent with everything bob sees, since it is all bob has
// seen — and alice the real one. Neither can tell alone; bob's message
// carries his checkpoint, and alice finds that it is not one history with
// hers: EventLogFork, with a Fork security error. The message itself is
// delivered.
func TestForkedViewsDetected(t *testing.T) {
	ts := newTestServer(t)
	signer := ts.ktSigner(t)
	alice := ts.register(t, "alice")
	bob, lt := ts.registerLying(t, "bob", nil)
	// A log of at least two epochs, so that a fork can differ from it.
	for alice.fromSize() < 2 {
		waitSequenced(t, alice, "alice", 0)
		time.Sleep(20 * time.Millisecond)
	}
	lt.set(procGetDeviceList, rewrite(func(t *testing.T, m *parleyv1.GetDeviceListResponse) { m.KtHead = forkHead(t, signer, m.KtHead) }))
	if _, err := bob.Send(context.Background(), "alice", "hello from the fork"); err != nil {
		t.Fatalf("bob, inside the fork, sees nothing wrong: %v", err)
	}
	if bob.trusted == nil || bob.trusted.Checkpoint.Size < 2 {
		t.Fatal("bob kept no forked checkpoint")
	}

	var fork, msg int
	for _, e := range events(t, alice) {
		switch e.Kind {
		case EventLogFork:
			fork++
			if e.From != "bob" {
				t.Fatalf("fork reported from %q", e.From)
			}
			ktKind(t, e.Err, verify.Fork)
		case EventMessage:
			msg++
		}
	}
	if fork != 1 || msg != 1 {
		t.Fatalf("alice saw %d forks and %d messages, want 1 and 1", fork, msg)
	}
	// Two people shown the same log see no fork.
	carol := ts.register(t, "carol")
	if _, err := carol.Send(context.Background(), "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	if k := kinds(events(t, alice)); k[EventLogFork] != 0 || k[EventMessage] != 1 {
		t.Fatalf("an honest checkpoint: %v", k)
	}
}

// TestUnloggedDeviceListRefused: a server that hands out bob's list without
// key-transparency proofs (as if it had not logged it) is waited for a
// bounded time and then refused with ErrNotInLog, a security error.
func TestUnloggedDeviceListRefused(t *testing.T) {
	ts := newTestServer(t)
	alice, lt := ts.registerLying(t, "alice", nil)
	ts.register(t, "bob")
	lt.set(procGetDeviceList, rewrite(func(t *testing.T, m *parleyv1.GetDeviceListResponse) {
		m.KtHead, m.KtSearch, m.KtValue = nil, nil, nil
	}))
	start := time.Now()
	_, err := alice.Send(context.Background(), "bob", "hello")
	var se *SecurityError
	if !errors.Is(err, ErrNotInLog) || !errors.Is(err, ErrSecurity) || !errors.As(err, &se) {
		t.Fatalf("send: %v, want a security error wrapping ErrNotInLog", err)
	}
	if d := time.Since(start); d < minSequenceWait || d > 10*minSequenceWait {
		t.Fatalf("gave up after %v, want about %v", d, minSequenceWait)
	}
}

// TestMonitorAcceptsTheAccountsOwnVersions: versions published by any of
// the account's devices (a link approved on the first device, a removal)
// are accounted for on every device, however many it missed: no alert.
func TestMonitorAcceptsTheAccountsOwnVersions(t *testing.T) {
	ts := newTestServer(t)
	bob := ts.register(t, "bob")
	bob2 := ts.link(t, bob, "bob-phone")
	bob3 := ts.link(t, bob2, "bob-tablet")
	if err := bob3.RemoveDevice(context.Background(), bob2.DeviceID()); err != nil {
		t.Fatal(err)
	}
	waitSequenced(t, bob, "bob", 3)
	for _, c := range []*Client{bob, bob3} {
		if err := c.MonitorAccount(context.Background()); err != nil {
			t.Fatalf("%s: %v", c.DeviceID(), err)
		}
		m, err := c.loadMonitor(context.Background())
		if err != nil || m.next != 4 {
			t.Fatalf("monitor position %+v, %v; want next version 4", m, err)
		}
	}
}
