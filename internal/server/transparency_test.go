package server

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
	"github.com/parleyim/parley/internal/store"
)

// ktConfig builds a client's verify.Config from GetConfig, with the
// witness policy it announces.
func ktConfig(t testing.TB, c parleyv1connect.TransparencyServiceClient) *verify.Config {
	t.Helper()
	resp, err := c.GetConfig(context.Background(), connect.NewRequest(&parleyv1.GetTransparencyConfigRequest{}))
	if err != nil {
		t.Fatalf("GetConfig: %v", err)
	}
	m := resp.Msg
	var policy verify.WitnessPolicy
	for _, vk := range m.WitnessVkeys {
		v, err := kt.NewCosignatureVerifier(vk)
		if err != nil {
			t.Fatal(err)
		}
		policy.Witnesses = append(policy.Witnesses, v)
	}
	policy.Threshold = int(m.WitnessThreshold)
	cfg, err := verify.NewConfig(m.Ed25519Vkey, m.HybridVkey, m.VrfPublicKey, policy)
	if err != nil {
		t.Fatalf("verify.NewConfig from GetConfig: %v", err)
	}
	if cfg.Origin != m.Origin {
		t.Fatalf("origin %q, keys name %q", m.Origin, cfg.Origin)
	}
	return cfg
}

// eventually polls fn until it returns true or 10 s pass.
func eventually(t testing.TB, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lookup is a verified GetDeviceList.
type lookup struct {
	resp    *parleyv1.GetDeviceListResponse
	trusted *verify.Trusted
	found   *verify.Found
}

// verifiedLookup runs GetDeviceList and verifies its key-transparency
// proofs as a client does, against prev (nil: first contact).
func verifiedLookup(t testing.TB, dir parleyv1connect.DirectoryServiceClient, cfg *verify.Config, prev *verify.Trusted, name string) (*lookup, error) {
	t.Helper()
	var from uint64
	if prev != nil {
		from = prev.Checkpoint.Size
	}
	resp, err := dir.GetDeviceList(context.Background(), connect.NewRequest(&parleyv1.GetDeviceListRequest{Username: name, KtFromSize: from}))
	if err != nil {
		return nil, err
	}
	h, err := kt.UnmarshalHead(resp.Msg.KtHead)
	if err != nil {
		return nil, err
	}
	tr, err := cfg.VerifyHead(prev, h, time.Now())
	if err != nil {
		return nil, err
	}
	sp, err := kt.UnmarshalSearchProof(resp.Msg.KtSearch)
	if err != nil {
		return nil, err
	}
	f, err := cfg.VerifySearch(tr, name, sp)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(f.Value, resp.Msg.KtValue) {
		return nil, errors.New("kt_value is not the value the proof opens")
	}
	return &lookup{resp: resp.Msg, trusted: tr, found: f}, nil
}

// waitSequenced waits until a lookup of name proves KT version want and
// returns it.
func waitSequenced(t testing.TB, dir parleyv1connect.DirectoryServiceClient, cfg *verify.Config, prev *verify.Trusted, name string, want uint32) *lookup {
	t.Helper()
	var l *lookup
	eventually(t, "the list is sequenced", func() bool {
		var err error
		l, err = verifiedLookup(t, dir, cfg, prev, name)
		if err != nil {
			if errors.Is(err, verify.ErrSecurity) {
				t.Fatalf("lookup of %s: %v", name, err)
			}
			return false
		}
		return l.found.Version == want
	})
	return l
}

// TestTransparencyEndToEnd: registrations and published lists are
// sequenced within a few epochs; every lookup carries proofs a client
// accepts, whose value is the list; fixed-version searches, the owner's
// monitoring and the audit of the whole log verify; an unknown account is
// proven absent.
func TestTransparencyEndToEnd(t *testing.T) {
	h := newHarness(t, testConfig())
	cfg := ktConfig(t, h.kt)
	ctx := context.Background()
	alice := h.register("alice", 2)
	h.register("bob", 2)

	l := waitSequenced(t, h.dir, cfg, nil, "alice", 0)
	if !bytes.Equal(l.resp.KtValue, alice.list.Marshal()) || !bytes.Equal(l.resp.SignedDeviceList, alice.list.Marshal()) {
		t.Fatal("kt_value or the list is not alice's version 1")
	}
	_, v2 := h.addPhone(alice)
	l2 := waitSequenced(t, h.dir, cfg, l.trusted, "alice", 1)
	if !bytes.Equal(l2.resp.KtValue, v2.Marshal()) || !bytes.Equal(l2.resp.SignedDeviceList, v2.Marshal()) {
		t.Fatal("kt_value or the list is not alice's version 2")
	}
	if l2.trusted.Checkpoint.Size <= l.trusted.Checkpoint.Size {
		t.Fatalf("the log did not grow: %d then %d", l.trusted.Checkpoint.Size, l2.trusted.Checkpoint.Size)
	}

	// A fixed-version search of version 1 (KT 0).
	sr, err := h.kt.Search(ctx, connect.NewRequest(&parleyv1.SearchRequest{Username: "Alice", FixedVersionPlusOne: 1}))
	if err != nil {
		t.Fatal(err)
	}
	hd, _ := kt.UnmarshalHead(sr.Msg.Head)
	tr, err := cfg.VerifyHead(nil, hd, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sp, err := kt.UnmarshalSearchProof(sr.Msg.Proof)
	if err != nil {
		t.Fatal(err)
	}
	f, err := cfg.VerifyFixed(tr, "alice", 0, sp)
	if err != nil || !bytes.Equal(f.Value, alice.list.Marshal()) {
		t.Fatalf("fixed search of version 0: %+v, %v", f, err)
	}
	if _, err := h.kt.Search(ctx, connect.NewRequest(&parleyv1.SearchRequest{Username: "alice", FixedVersionPlusOne: 3})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("fixed search beyond the greatest: %v, want NotFound", err)
	}

	// The owner monitors from version 0: both versions are hers.
	mr, err := h.kt.Monitor(ctx, connect.NewRequest(&parleyv1.MonitorRequest{Username: "alice", FromSize: tr.Checkpoint.Size}))
	if err != nil {
		t.Fatal(err)
	}
	hd, _ = kt.UnmarshalHead(mr.Msg.Head)
	tr2, err := cfg.VerifyHead(tr, hd, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mp, err := kt.UnmarshalMonitorProof(mr.Msg.Proof)
	if err != nil {
		t.Fatal(err)
	}
	published := [][]byte{alice.list.Marshal(), v2.Marshal()}
	res, err := cfg.VerifyMonitor(tr2, "alice", 0, verify.Owner{Greatest: 1, Value: func(v uint32) ([]byte, bool) {
		if int(v) < len(published) {
			return published[v], true
		}
		return nil, false
	}}, mp)
	if err != nil || res.Greatest != 1 || len(res.Unexpected) != 0 {
		t.Fatalf("monitor: %+v, %v", res, err)
	}
	if _, err := h.kt.Monitor(ctx, connect.NewRequest(&parleyv1.MonitorRequest{Username: "alice", FromVersion: 5})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("monitor from beyond the greatest: %v, want InvalidArgument", err)
	}

	// An account that does not exist is proven absent.
	sr, err = h.kt.Search(ctx, connect.NewRequest(&parleyv1.SearchRequest{Username: "carol"}))
	if err != nil {
		t.Fatal(err)
	}
	hd, _ = kt.UnmarshalHead(sr.Msg.Head)
	if tr, err = cfg.VerifyHead(nil, hd, time.Now()); err != nil {
		t.Fatal(err)
	}
	sp, _ = kt.UnmarshalSearchProof(sr.Msg.Proof)
	if _, err := cfg.VerifySearch(tr, "carol", sp); !errors.Is(err, verify.ErrNotFound) {
		t.Fatalf("search for an absent account: %v, want verify.ErrNotFound", err)
	}

	// The whole log audits, fetched in pages.
	auditAll(t, h.kt, cfg, 3)
}

// auditAll fetches every epoch with GetEpochs, pageSize at a time, and
// audits the log against the newest checkpoint. It returns the audited
// size.
func auditAll(t testing.TB, c parleyv1connect.TransparencyServiceClient, cfg *verify.Config, pageSize uint32) uint64 {
	t.Helper()
	var (
		epochs     []kt.Epoch
		entries    []kt.LogEntry
		checkpoint []byte
	)
	for {
		resp, err := c.GetEpochs(context.Background(), connect.NewRequest(&parleyv1.GetEpochsRequest{From: uint64(len(epochs)), Limit: pageSize}))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Msg.Epochs) != len(resp.Msg.Entries) || len(resp.Msg.Epochs) > int(pageSize) {
			t.Fatalf("GetEpochs: %d epochs, %d entries (limit %d)", len(resp.Msg.Epochs), len(resp.Msg.Entries), pageSize)
		}
		if len(resp.Msg.Epochs) == 0 {
			break
		}
		checkpoint = resp.Msg.Checkpoint
		for i := range resp.Msg.Epochs {
			e, err := kt.UnmarshalEpoch(resp.Msg.Epochs[i])
			if err != nil {
				t.Fatal(err)
			}
			entry, err := kt.UnmarshalLogEntry(resp.Msg.Entries[i])
			if err != nil {
				t.Fatal(err)
			}
			epochs, entries = append(epochs, *e), append(entries, *entry)
		}
	}
	// The checkpoint of the last page may be newer than the epochs
	// fetched; fetch again until the two agree.
	cp, _, err := cfg.VerifyCheckpoint(checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != uint64(len(epochs)) {
		return auditAll(t, c, cfg, pageSize)
	}
	if _, err := cfg.Audit(epochs, entries, checkpoint); err != nil {
		t.Fatalf("audit of %d epochs: %v", len(epochs), err)
	}
	return uint64(len(epochs))
}

// TestTransparencyRestartContinuesLog: a server restarted on the same
// store rebuilds its state and extends the same log: a client's
// checkpoint from before the restart is consistent with the heads after
// it, and the old lists stay provable.
func TestTransparencyRestartContinuesLog(t *testing.T) {
	h := newHarness(t, testConfig())
	cfg := ktConfig(t, h.kt)
	alice := h.register("alice", 2)
	before := waitSequenced(t, h.dir, cfg, nil, "alice", 0)

	h2 := h.restart()
	if cfg2 := ktConfig(t, h2.kt); cfg2.Origin != cfg.Origin || !bytes.Equal(cfg2.VRF.Bytes(), cfg.VRF.Bytes()) {
		t.Fatal("the restarted server has other keys")
	}
	_, v2 := h2.addPhone(alice)
	after := waitSequenced(t, h2.dir, cfg, before.trusted, "alice", 1)
	if !bytes.Equal(after.resp.KtValue, v2.Marshal()) {
		t.Fatal("kt_value after the restart is not version 2")
	}
	if after.trusted.Checkpoint.Size <= before.trusted.Checkpoint.Size {
		t.Fatal("the log did not grow across the restart")
	}
	auditAll(t, h2.kt, cfg, 100)
}

// TestTransparencyEmptyEpochs: with nothing to sequence the log still
// grows at KTMaxEpochAge, so heads stay fresh.
func TestTransparencyEmptyEpochs(t *testing.T) {
	cfg := testConfig()
	cfg.KTMaxEpochAge = 50 * time.Millisecond
	h := newHarness(t, cfg)
	vc := ktConfig(t, h.kt)
	head := func() kt.Checkpoint {
		resp, err := h.kt.GetHead(context.Background(), connect.NewRequest(&parleyv1.GetHeadRequest{}))
		if err != nil {
			return kt.Checkpoint{}
		}
		hd, err := kt.UnmarshalHead(resp.Msg.Head)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := vc.VerifyHead(nil, hd, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tr.Checkpoint
	}
	eventually(t, "a first epoch", func() bool { return head().Size >= 1 })
	first := head().Size
	eventually(t, "empty epochs", func() bool { return head().Size >= first+2 })
	if n, _ := h.st.PendingKTCount(context.Background()); n != 0 {
		t.Fatalf("%d pending", n)
	}
}

// TestGetDeviceListNewerThanSequenced: a list published since the newest
// epoch is served as signed_device_list while kt_value is the sequenced
// one it chains to.
func TestGetDeviceListNewerThanSequenced(t *testing.T) {
	cfg := testConfig()
	cfg.KTEpochInterval = time.Hour // the sequencer runs once, at start
	h := newHarness(t, cfg)
	vc := ktConfig(t, h.kt)
	alice := h.register("alice", 2)
	// Sequence by hand, once.
	if err := h.srv.kt.step(context.Background()); err != nil {
		t.Fatal(err)
	}
	l := waitSequenced(t, h.dir, vc, nil, "alice", 0)
	_, v2 := h.addPhone(alice)
	l, err := verifiedLookup(t, h.dir, vc, l.trusted, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(l.resp.SignedDeviceList, v2.Marshal()) || !bytes.Equal(l.resp.KtValue, alice.list.Marshal()) || l.found.Version != 0 {
		t.Fatal("want the current list version 2 with kt_value version 1")
	}
}

// TestTransparencyFromNewerCheckpoint: asking for consistency from a
// checkpoint larger than the served one is Unavailable, not a wrong proof.
func TestTransparencyFromNewerCheckpoint(t *testing.T) {
	h := newHarness(t, testConfig())
	eventually(t, "a head", func() bool {
		_, err := h.kt.GetHead(context.Background(), connect.NewRequest(&parleyv1.GetHeadRequest{}))
		return err == nil
	})
	_, err := h.kt.GetHead(context.Background(), connect.NewRequest(&parleyv1.GetHeadRequest{FromSize: 1 << 40}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("GetHead from a future size: %v, want Unavailable", err)
	}
}

// TestCheckpointOpensWithXModNote: the checkpoints the server serves
// parse and verify with golang.org/x/mod/sumdb/note and the log's
// published Ed25519 vkey.
func TestServedCheckpointOpensWithXModNote(t *testing.T) {
	h := newHarness(t, testConfig())
	h.register("alice", 2)
	cfg := ktConfig(t, h.kt)
	l := waitSequenced(t, h.dir, cfg, nil, "alice", 0)
	resp, err := h.kt.GetConfig(context.Background(), connect.NewRequest(&parleyv1.GetTransparencyConfigRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(resp.Msg.Ed25519Vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(l.trusted.Note, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	if cp, err := kt.ParseCheckpoint(n.Text); err != nil || cp != l.trusted.Checkpoint {
		t.Fatalf("the note's text: %+v, %v", cp, err)
	}
}

// TestDeletedUsernameStaysReserved: once an account's lists are in the
// log, its username cannot be registered again (the log keeps them).
func TestDeletedUsernameStaysReserved(t *testing.T) {
	h := newHarness(t, testConfig())
	alice := h.register("alice", 2)
	if _, err := h.dir.DeleteAccount(context.Background(), req(alice, &parleyv1.DeleteAccountRequest{Username: "alice"})); err != nil {
		t.Fatal(err)
	}
	_, r := h.registerRequest("alice", 2)
	_, err := h.dir.Register(context.Background(), connect.NewRequest(r))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("re-registering a deleted username: %v, want AlreadyExists", err)
	}
	var _ = store.ErrUsernameInLog
}
