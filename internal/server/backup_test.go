package server

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	_ "modernc.org/sqlite" // to read the server's file as an outsider would
)

func (h *harness) backupClient() parleyv1connect.BackupServiceClient {
	return parleyv1connect.NewBackupServiceClient(h.http.Client(), h.http.URL)
}

func random32() []byte {
	b := make([]byte, 32)
	primitives.Random(b)
	return b
}

// putBackup uploads data under locator in chunks of chunk bytes and
// commits it.
func putBackup(t *testing.T, bc parleyv1connect.BackupServiceClient, a *account, locator, token, data []byte, chunk int) (uint64, error) {
	t.Helper()
	ctx := context.Background()
	begin, err := bc.BeginBackup(ctx, req(a, &parleyv1.BeginBackupRequest{Locator: locator, WriteToken: token, Size: int64(len(data))}))
	if err != nil {
		return 0, err
	}
	n := uint32(0)
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		if _, err := bc.PutBackupChunk(ctx, req(a, &parleyv1.PutBackupChunkRequest{UploadId: begin.Msg.UploadId, Index: n, Chunk: data[off:end]})); err != nil {
			return 0, err
		}
		n++
	}
	resp, err := bc.CommitBackup(ctx, req(a, &parleyv1.CommitBackupRequest{UploadId: begin.Msg.UploadId, Chunks: n}))
	if err != nil {
		return 0, err
	}
	return resp.Msg.Generation, nil
}

// getBackup downloads a generation without a token, as a restoring device
// does.
func getBackup(bc parleyv1connect.BackupServiceClient, locator []byte, gen uint64) (*parleyv1.GetBackupResponse, []byte, error) {
	s, err := bc.GetBackup(context.Background(), connect.NewRequest(&parleyv1.GetBackupRequest{Locator: locator, Generation: gen}))
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	var (
		first *parleyv1.GetBackupResponse
		data  []byte
	)
	for s.Receive() {
		if first == nil {
			first = s.Msg()
		}
		data = append(data, s.Msg().Chunk...)
	}
	return first, data, s.Err()
}

func TestBackupUploadDownload(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.register("alice", 1)
	bc := h.backupClient()
	locator, token := random32(), random32()
	data := bytes.Repeat([]byte("age-encrypted archive bytes "), 40_000) // ~1.1 MiB: two chunks at 1 MiB
	gen, err := putBackup(t, bc, a, locator, token, data, MaxBackupChunk)
	if err != nil || gen != 1 {
		t.Fatalf("upload: generation %d, %v", gen, err)
	}
	first, got, err := getBackup(bc, locator, 0)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if !bytes.Equal(got, data) || first.Generation != 1 || first.Size != int64(len(data)) || first.Chunks != 2 {
		t.Fatalf("download: generation %d, %d bytes in %d chunks; want 1, %d bytes, 2 chunks", first.Generation, len(got), first.Chunks, len(data))
	}
	// A second generation replaces the first as the newest; the first can
	// still be named while it is kept.
	data2 := []byte("second generation")
	if gen, err := putBackup(t, bc, a, locator, token, data2, 5); err != nil || gen != 2 {
		t.Fatalf("second upload: generation %d, %v", gen, err)
	}
	if _, got, err := getBackup(bc, locator, 0); err != nil || !bytes.Equal(got, data2) {
		t.Fatalf("newest after the second upload: %q, %v", got, err)
	}
	if _, got, err := getBackup(bc, locator, 1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("generation 1 after the second upload: %d bytes, %v", len(got), err)
	}
}

func TestBackupGenerationsPruned(t *testing.T) {
	cfg := testConfig()
	cfg.BackupGenerations = 2
	h := newHarness(t, cfg)
	a := h.register("alice", 1)
	bc := h.backupClient()
	locator, token := random32(), random32()
	for i := range 4 {
		if _, err := putBackup(t, bc, a, locator, token, []byte{byte(i)}, 10); err != nil {
			t.Fatal(err)
		}
	}
	for gen, want := range map[uint64]connect.Code{1: connect.CodeNotFound, 2: connect.CodeNotFound, 3: 0, 4: 0} {
		_, _, err := getBackup(bc, locator, gen)
		if code(err) != want && !(want == 0 && err == nil) {
			t.Errorf("generation %d: %v, want code %v", gen, err, want)
		}
	}
}

// TestBackupOverwriteByAnotherAccountRefused: an account that learned
// someone's locator cannot replace or delete their backups without the
// write token, which only the recovery key derives.
func TestBackupOverwriteByAnotherAccountRefused(t *testing.T) {
	h := newHarness(t, testConfig())
	alice, mallory := h.register("alice", 1), h.register("mallory", 1)
	bc := h.backupClient()
	locator, token := random32(), random32()
	if _, err := putBackup(t, bc, alice, locator, token, []byte("alice's backup"), 100); err != nil {
		t.Fatal(err)
	}
	_, err := putBackup(t, bc, mallory, locator, random32(), []byte("mallory's"), 100)
	if code(err) != connect.CodePermissionDenied {
		t.Errorf("overwrite with another write token: %v, want PermissionDenied", err)
	}
	_, err = bc.DeleteBackups(context.Background(), req(mallory, &parleyv1.DeleteBackupsRequest{Locator: locator, WriteToken: random32()}))
	if code(err) != connect.CodePermissionDenied {
		t.Errorf("delete with another write token: %v, want PermissionDenied", err)
	}
	if _, got, err := getBackup(bc, locator, 0); err != nil || string(got) != "alice's backup" {
		t.Errorf("after refused writes the backup is %q, %v", got, err)
	}
	// With the token, the owner deletes them.
	resp, err := bc.DeleteBackups(context.Background(), req(alice, &parleyv1.DeleteBackupsRequest{Locator: locator, WriteToken: token}))
	if err != nil || resp.Msg.Deleted != 1 {
		t.Fatalf("delete: %v, %v", resp, err)
	}
	_, _, err = getBackup(bc, locator, 0)
	if code(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "recovery key") {
		t.Errorf("download after delete: %v, want NotFound that names the recovery key", err)
	}
}

func TestBackupNeedsToken(t *testing.T) {
	h := newHarness(t, testConfig())
	bc := h.backupClient()
	_, err := bc.BeginBackup(context.Background(), connect.NewRequest(&parleyv1.BeginBackupRequest{Locator: random32(), WriteToken: random32()}))
	if code(err) != connect.CodeUnauthenticated {
		t.Errorf("BeginBackup without a token: %v, want Unauthenticated", err)
	}
	_, err = bc.DeleteBackups(context.Background(), connect.NewRequest(&parleyv1.DeleteBackupsRequest{Locator: random32(), WriteToken: random32()}))
	if code(err) != connect.CodeUnauthenticated {
		t.Errorf("DeleteBackups without a token: %v, want Unauthenticated", err)
	}
}

func TestBackupLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBackupSize = 1000
	h := newHarness(t, cfg)
	a := h.register("alice", 1)
	bc := h.backupClient()
	ctx := context.Background()
	_, err := bc.BeginBackup(ctx, req(a, &parleyv1.BeginBackupRequest{Locator: random32(), WriteToken: random32(), Size: 1001}))
	if code(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "MaxBackupSize") {
		t.Errorf("declared size over the limit: %v, want ResourceExhausted naming MaxBackupSize", err)
	}
	// A client that under-declares is stopped by the chunks' total.
	_, err = putBackup(t, bc, a, random32(), random32(), make([]byte, 1001), 600)
	if code(err) != connect.CodeResourceExhausted {
		t.Errorf("upload over the limit: %v, want ResourceExhausted", err)
	}
	begin, err := bc.BeginBackup(ctx, req(a, &parleyv1.BeginBackupRequest{Locator: random32(), WriteToken: random32()}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bc.PutBackupChunk(ctx, req(a, &parleyv1.PutBackupChunkRequest{UploadId: begin.Msg.UploadId, Chunk: make([]byte, MaxBackupChunk+1)}))
	if code(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "MaxBackupChunk") {
		t.Errorf("chunk over MaxBackupChunk: %v", err)
	}
	_, err = bc.PutBackupChunk(ctx, req(a, &parleyv1.PutBackupChunkRequest{UploadId: begin.Msg.UploadId, Index: 3, Chunk: []byte("x")}))
	if code(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "expects index 0") {
		t.Errorf("chunk out of order: %v", err)
	}
	_, err = bc.CommitBackup(ctx, req(a, &parleyv1.CommitBackupRequest{UploadId: begin.Msg.UploadId, Chunks: 2}))
	if code(err) != connect.CodeFailedPrecondition {
		t.Errorf("commit with a wrong chunk count: %v", err)
	}
	for _, bad := range [][]byte{nil, make([]byte, 31), make([]byte, 33)} {
		_, err := bc.BeginBackup(ctx, req(a, &parleyv1.BeginBackupRequest{Locator: bad, WriteToken: random32()}))
		if code(err) != connect.CodeInvalidArgument {
			t.Errorf("locator of %d bytes: %v, want InvalidArgument", len(bad), err)
		}
	}
}

// TestBackupLocatorProbingLimited: downloads are unauthenticated, so each
// costs a token of a per-IP limit.
func TestBackupLocatorProbingLimited(t *testing.T) {
	cfg := testConfig()
	cfg.BackupIPRate, cfg.BackupIPBurst = rate.Every(1<<40), 3
	h := newHarness(t, cfg)
	bc := h.backupClient()
	for i := range 4 {
		_, _, err := getBackup(bc, random32(), 0)
		want := connect.CodeNotFound
		if i == 3 {
			want = connect.CodeResourceExhausted
		}
		if code(err) != want {
			t.Fatalf("probe %d: %v, want %v", i, err, want)
		}
	}
}

// TestServerStoresNoBackupLinkToAccount: the server's database holds the
// locator and the hash of the write token, never the token, and nothing
// that names the uploading account next to the backup.
func TestServerStoresNoBackupLinkToAccount(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.register("alice-the-uploader", 1)
	bc := h.backupClient()
	locator, token := random32(), random32()
	if _, err := putBackup(t, bc, a, locator, token, []byte("ciphertext"), 100); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+h.path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(context.Background(), "SELECT * FROM backups")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			b, _ := v.([]byte)
			s, _ := v.(string)
			if bytes.Contains(b, token) || strings.Contains(s, "alice") || bytes.Contains(b, []byte("alice")) {
				t.Errorf("column %s of a backup row holds the write token or the account", cols[i])
			}
		}
	}
	// And the same over the whole file, WAL included, for the token.
	for _, f := range []string{h.path, h.path + "-wal"} {
		raw, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(raw, token) {
			t.Errorf("%s contains the backup write token", filepath.Base(f))
		}
	}
}

// TestRecoverAccountNeedsAccountKey: a device without a token can publish
// the next device list only with the account key's signature over it.
func TestRecoverAccountNeedsAccountKey(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.register("alice", 1)
	prev, err := a.list.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	restored := identity.GenerateDeviceKeys()
	_, up, err := prekey.NewSet(restored.Signing, 0)
	if err != nil {
		t.Fatal(err)
	}
	next := &identity.DeviceList{Account: "alice", Version: 2, Devices: append(prev.Devices,
		identity.DeviceEntry{Device: restored.Public(), Name: "restored", Added: 2}), Prev: a.list.Hash()}
	ctx := context.Background()
	recoverWith := func(key *identity.AccountKey) error {
		signed, err := identity.SignDeviceList(key, next)
		if err != nil {
			t.Fatal(err)
		}
		id := restored.Public().ID()
		_, err = h.dir.RecoverAccount(ctx, connect.NewRequest(&parleyv1.RecoverAccountRequest{
			Username: "Alice", SignedDeviceList: signed.Marshal(),
			NewDevices: []*parleyv1.NewDevicePrekeys{{DeviceId: id[:], Prekeys: upload(up)}},
		}))
		return err
	}
	if err := recoverWith(identity.GenerateAccountKey()); code(err) != connect.CodeInvalidArgument {
		t.Fatalf("a list signed by another account key: %v, want InvalidArgument", err)
	}
	if err := recoverWith(a.key); err != nil {
		t.Fatalf("a list signed by the account key: %v", err)
	}
	// The restored device can now log in and be reached.
	r := &account{name: "alice", key: a.key, dev: restored}
	h.login(r)
	resp, err := h.dir.ClaimBundles(ctx, req(a, &parleyv1.ClaimBundlesRequest{Username: "alice"}))
	if err != nil || len(resp.Msg.Bundles) != 2 {
		t.Fatalf("bundles after recovery: %v, %v; want both devices", resp, err)
	}
}

// TestAnonymousDeviceListLookupLimited: a restoring device reads its
// account's device list without a token, at the tight backup rate.
func TestAnonymousDeviceListLookupLimited(t *testing.T) {
	cfg := testConfig()
	cfg.BackupIPRate, cfg.BackupIPBurst = rate.Every(1<<40), 2
	h := newHarness(t, cfg)
	a := h.register("alice", 1)
	ctx := context.Background()
	for i := range 3 {
		resp, err := h.dir.GetDeviceList(ctx, connect.NewRequest(&parleyv1.GetDeviceListRequest{Username: "alice"}))
		if i < 2 && (err != nil || !bytes.Equal(resp.Msg.SignedDeviceList, a.list.Marshal())) {
			t.Fatalf("anonymous lookup %d: %v", i, err)
		}
		if i == 2 && code(err) != connect.CodeResourceExhausted {
			t.Fatalf("anonymous lookup over the limit: %v, want ResourceExhausted", err)
		}
	}
	// With a token the lookup is an ordinary call, not charged to it.
	if _, err := h.dir.GetDeviceList(ctx, req(a, &parleyv1.GetDeviceListRequest{Username: "alice"})); err != nil {
		t.Fatalf("authenticated lookup after the anonymous limit: %v", err)
	}
}
