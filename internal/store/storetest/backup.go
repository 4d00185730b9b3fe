package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

// RunBackups runs the conformance suite of store.Backups (docs/server.md
// §5.7). newStore has the shape Run takes; the stores it opens must
// implement store.Backups.
//
// Choices the documentation leaves open that every engine must agree on
// ("suite:"):
//
//   - suite: a committed upload with zero chunks is a generation like any
//     other, and BackupChunks returns no chunks for it (not ErrNotFound).
//   - suite: a refused BeginBackup or DeleteBackups changes nothing.
func RunBackups(t *testing.T, newStore func(t *testing.T) (open func() store.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *bharness)
	}{
		{"UploadAndRead", testBackupUploadAndRead},
		{"ChunkOrder", testBackupChunkOrder},
		{"SizeLimit", testBackupSizeLimit},
		{"CommitCount", testBackupCommitCount},
		{"CommitRetry", testBackupCommitRetry},
		{"Generations", testBackupGenerations},
		{"EmptyBackup", testBackupEmpty},
		{"WriteTokenGuardsLocator", testBackupWriteTokenGuardsLocator},
		{"Delete", testBackupDelete},
		{"ExpireUploads", testBackupExpireUploads},
		{"ConcurrentCommitsNumberDistinctly", testBackupConcurrentCommits},
		{"Durability", testBackupDurability},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, open: newStore(t), ctx: t.Context(), closed: map[store.Store]bool{}}
			h.s = h.openStore()
			if _, ok := h.s.(store.Backups); !ok {
				t.Fatalf("%T does not implement store.Backups", h.s)
			}
			tc.fn(t, &bharness{h})
		})
	}
}

type bharness struct{ *harness }

func (h *bharness) b() store.Backups { return h.s.(store.Backups) }

func newLocator() (l store.BackupLocator, writeHash [32]byte) {
	primitives.Random(l[:])
	primitives.Random(writeHash[:])
	return l, writeHash
}

// chunkBytes is chunk i of upload u, n bytes long (at least a few), so a
// mix-up between uploads or indexes shows.
func chunkBytes(u store.BackupUploadID, i uint32, n int) []byte {
	b := fmt.Appendf(nil, "%x/%d/", u[:4], i)
	for len(b) < n {
		b = append(b, byte(i))
	}
	return b
}

// begin starts an upload created at base, expiring a day later.
func (h *bharness) begin(l store.BackupLocator, wh [32]byte) store.BackupUploadID {
	h.t.Helper()
	var id store.BackupUploadID
	primitives.Random(id[:])
	if err := h.b().BeginBackup(h.ctx, store.BackupUpload{ID: id, Locator: l, WriteHash: wh, Created: base, Expires: base.Add(24 * time.Hour)}); err != nil {
		h.t.Fatalf("BeginBackup: %v", err)
	}
	return id
}

// upload stores n chunks and commits them, keeping keep generations, and
// returns the chunks and the generation.
func (h *bharness) upload(l store.BackupLocator, wh [32]byte, n int, keep int) ([][]byte, *store.Backup) {
	h.t.Helper()
	id := h.begin(l, wh)
	var chunks [][]byte
	for i := range uint32(n) {
		c := chunkBytes(id, i, 50+int(i)*30)
		if err := h.b().PutBackupChunk(h.ctx, id, i, c, 0); err != nil {
			h.t.Fatalf("PutBackupChunk(%d): %v", i, err)
		}
		chunks = append(chunks, c)
	}
	b, err := h.b().CommitBackup(h.ctx, id, uint32(n), keep)
	if err != nil {
		h.t.Fatalf("CommitBackup: %v", err)
	}
	return chunks, b
}

func (h *bharness) readAll(l store.BackupLocator, gen uint64) ([][]byte, error) {
	var out [][]byte
	for {
		cs, err := h.b().BackupChunks(h.ctx, l, gen, uint32(len(out)), 3)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
		if len(cs) < 3 {
			return out, nil
		}
	}
}

func sameChunks(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func testBackupUploadAndRead(t *testing.T, h *bharness) {
	l, wh := newLocator()
	if _, err := h.b().LatestBackup(h.ctx, l); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LatestBackup of an empty locator: %v, want ErrNotFound", err)
	}
	chunks, b := h.upload(l, wh, 7, 2)
	size := int64(0)
	for _, c := range chunks {
		size += int64(len(c))
	}
	if b.Generation != 1 || b.Chunks != 7 || b.Size != size || b.Locator != l || !b.Created.Equal(base) {
		t.Errorf("CommitBackup = %+v, want generation 1 of 7 chunks, %d bytes", b, size)
	}
	latest, err := h.b().LatestBackup(h.ctx, l)
	if err != nil || *latest != *b {
		t.Fatalf("LatestBackup = %+v, %v; want %+v", latest, err, b)
	}
	got, err := h.readAll(l, 1)
	if err != nil || !sameChunks(got, chunks) {
		t.Fatalf("read back %d chunks (%v), want the 7 uploaded", len(got), err)
	}
	// Reading past the end gives no chunks; another locator has nothing.
	if cs, err := h.b().BackupChunks(h.ctx, l, 1, 7, 5); err != nil || len(cs) != 0 {
		t.Errorf("BackupChunks past the end = %d chunks, %v", len(cs), err)
	}
	other, _ := newLocator()
	if _, err := h.b().BackupChunks(h.ctx, other, 1, 0, 5); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("BackupChunks of another locator: %v, want ErrNotFound", err)
	}
	if _, err := h.b().BackupChunks(h.ctx, l, 2, 0, 5); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("BackupChunks of an uncommitted generation: %v, want ErrNotFound", err)
	}
}

func testBackupChunkOrder(t *testing.T, h *bharness) {
	l, wh := newLocator()
	id := h.begin(l, wh)
	c0, c1 := chunkBytes(id, 0, 40), chunkBytes(id, 1, 40)
	var ie *store.FrameIndexError
	if err := h.b().PutBackupChunk(h.ctx, id, 1, c1, 0); !errors.As(err, &ie) || ie.Next != 0 || ie.Conflict {
		t.Fatalf("PutBackupChunk at 1 of an empty upload: %v, want *FrameIndexError next 0", err)
	}
	if err := h.b().PutBackupChunk(h.ctx, id, 0, c0, 0); err != nil {
		t.Fatal(err)
	}
	// A retry of the last chunk is a no-op; other bytes there conflict.
	if err := h.b().PutBackupChunk(h.ctx, id, 0, c0, 0); err != nil {
		t.Errorf("retry of the last chunk: %v", err)
	}
	if err := h.b().PutBackupChunk(h.ctx, id, 0, c1, 0); !errors.As(err, &ie) || !ie.Conflict || ie.Next != 1 {
		t.Errorf("other bytes at the last index: %v, want a conflict", err)
	}
	var unknown store.BackupUploadID
	primitives.Random(unknown[:])
	if err := h.b().PutBackupChunk(h.ctx, unknown, 0, c0, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutBackupChunk of an unknown upload: %v, want ErrNotFound", err)
	}
	if _, err := h.b().CommitBackup(h.ctx, id, 1, 1); err != nil {
		t.Fatal(err)
	}
	// A committed upload takes no more chunks.
	if err := h.b().PutBackupChunk(h.ctx, id, 1, c1, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutBackupChunk after commit: %v, want ErrNotFound", err)
	}
}

func testBackupSizeLimit(t *testing.T, h *bharness) {
	l, wh := newLocator()
	id := h.begin(l, wh)
	if err := h.b().PutBackupChunk(h.ctx, id, 0, make([]byte, 60), 100); err != nil {
		t.Fatal(err)
	}
	var tl *store.BackupTooLargeError
	if err := h.b().PutBackupChunk(h.ctx, id, 1, make([]byte, 41), 100); !errors.As(err, &tl) || tl.Limit != 100 {
		t.Fatalf("a chunk over the limit: %v, want *BackupTooLargeError{100}", err)
	}
	if err := h.b().PutBackupChunk(h.ctx, id, 1, make([]byte, 40), 100); err != nil {
		t.Errorf("a chunk up to the limit: %v", err)
	}
}

func testBackupCommitCount(t *testing.T, h *bharness) {
	l, wh := newLocator()
	id := h.begin(l, wh)
	if err := h.b().PutBackupChunk(h.ctx, id, 0, chunkBytes(id, 0, 10), 0); err != nil {
		t.Fatal(err)
	}
	var ce *store.BackupChunkCountError
	if _, err := h.b().CommitBackup(h.ctx, id, 2, 1); !errors.As(err, &ce) || ce.Want != 2 || ce.Stored != 1 {
		t.Fatalf("commit naming 2 chunks of 1: %v, want *BackupChunkCountError", err)
	}
	if _, err := h.b().LatestBackup(h.ctx, l); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused commit left a generation: %v", err)
	}
	var unknown store.BackupUploadID
	primitives.Random(unknown[:])
	if _, err := h.b().CommitBackup(h.ctx, unknown, 0, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("commit of an unknown upload: %v, want ErrNotFound", err)
	}
}

func testBackupCommitRetry(t *testing.T, h *bharness) {
	l, wh := newLocator()
	id := h.begin(l, wh)
	if err := h.b().PutBackupChunk(h.ctx, id, 0, chunkBytes(id, 0, 10), 0); err != nil {
		t.Fatal(err)
	}
	b1, err := h.b().CommitBackup(h.ctx, id, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := h.b().CommitBackup(h.ctx, id, 1, 1)
	if err != nil || *b2 != *b1 {
		t.Fatalf("a retried commit = %+v, %v; want the first answer %+v", b2, err, b1)
	}
}

func testBackupGenerations(t *testing.T, h *bharness) {
	l, wh := newLocator()
	var all [][][]byte
	for g := 1; g <= 4; g++ {
		chunks, b := h.upload(l, wh, g, 2)
		if b.Generation != uint64(g) {
			t.Fatalf("upload %d got generation %d", g, b.Generation)
		}
		all = append(all, chunks)
	}
	// Keep 2: generations 3 and 4 remain, 1 and 2 are pruned.
	for g := uint64(1); g <= 4; g++ {
		got, err := h.readAll(l, g)
		if g <= 2 {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("generation %d after pruning: %v, want ErrNotFound", g, err)
			}
			continue
		}
		if err != nil || !sameChunks(got, all[g-1]) {
			t.Errorf("generation %d: %d chunks (%v), want its own %d", g, len(got), err, len(all[g-1]))
		}
	}
	if b, err := h.b().LatestBackup(h.ctx, l); err != nil || b.Generation != 4 {
		t.Errorf("LatestBackup = %+v, %v; want generation 4", b, err)
	}
	// Keep 1 prunes down to the new one.
	h.upload(l, wh, 1, 1)
	if _, err := h.readAll(l, 4); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("generation 4 after a commit keeping 1: %v, want ErrNotFound", err)
	}
	if _, err := h.b().CommitBackup(h.ctx, h.begin(l, wh), 0, 0); err == nil {
		t.Error("CommitBackup keeping 0 generations succeeded")
	}
}

func testBackupEmpty(t *testing.T, h *bharness) {
	l, wh := newLocator()
	_, b := h.upload(l, wh, 0, 1)
	if b.Chunks != 0 || b.Size != 0 || b.Generation != 1 {
		t.Errorf("empty backup = %+v", b)
	}
	if cs, err := h.b().BackupChunks(h.ctx, l, 1, 0, 4); err != nil || len(cs) != 0 {
		t.Errorf("BackupChunks of an empty backup = %d, %v; want none, nil (suite:)", len(cs), err)
	}
}

func testBackupWriteTokenGuardsLocator(t *testing.T, h *bharness) {
	l, wh := newLocator()
	chunks, _ := h.upload(l, wh, 2, 2)
	_, intruder := newLocator()
	var id store.BackupUploadID
	primitives.Random(id[:])
	err := h.b().BeginBackup(h.ctx, store.BackupUpload{ID: id, Locator: l, WriteHash: intruder, Created: base, Expires: base.Add(time.Hour)})
	if !errors.Is(err, store.ErrBackupForbidden) {
		t.Fatalf("BeginBackup with another write hash: %v, want ErrBackupForbidden", err)
	}
	if err := h.b().PutBackupChunk(h.ctx, id, 0, []byte("x"), 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused BeginBackup recorded an upload: %v", err)
	}
	if _, err := h.b().DeleteBackups(h.ctx, l, intruder); !errors.Is(err, store.ErrBackupForbidden) {
		t.Errorf("DeleteBackups with another write hash: %v, want ErrBackupForbidden", err)
	}
	if got, err := h.readAll(l, 1); err != nil || !sameChunks(got, chunks) {
		t.Errorf("after refused writes the backup reads %d chunks, %v", len(got), err)
	}
	// Two uploads race on a fresh locator with different hashes: the first
	// commit wins, the second is refused at commit.
	l2, whA := newLocator()
	_, whB := newLocator()
	a, b := h.begin(l2, whA), h.begin(l2, whB)
	if _, err := h.b().CommitBackup(h.ctx, a, 0, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := h.b().CommitBackup(h.ctx, b, 0, 2); !errors.Is(err, store.ErrBackupForbidden) {
		t.Errorf("a commit under a locator another write hash committed to: %v, want ErrBackupForbidden", err)
	}
}

func testBackupDelete(t *testing.T, h *bharness) {
	l, wh := newLocator()
	h.upload(l, wh, 2, 3)
	h.upload(l, wh, 1, 3)
	pending := h.begin(l, wh)
	keep, keepHash := newLocator()
	kept, _ := h.upload(keep, keepHash, 1, 1)
	n, err := h.b().DeleteBackups(h.ctx, l, wh)
	if err != nil || n != 2 {
		t.Fatalf("DeleteBackups = %d, %v; want 2 generations", n, err)
	}
	if _, err := h.b().LatestBackup(h.ctx, l); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LatestBackup after delete: %v, want ErrNotFound", err)
	}
	if err := h.b().PutBackupChunk(h.ctx, pending, 0, []byte("x"), 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a pending upload survived DeleteBackups: %v", err)
	}
	if n, err := h.b().DeleteBackups(h.ctx, l, wh); err != nil || n != 0 {
		t.Errorf("DeleteBackups again = %d, %v; want 0, nil", n, err)
	}
	if got, err := h.readAll(keep, 1); err != nil || !sameChunks(got, kept) {
		t.Errorf("another locator's backup after delete: %d chunks, %v", len(got), err)
	}
	// After deletion the locator is free for a new write token.
	_, fresh := newLocator()
	if _, b := h.upload(l, fresh, 1, 1); b.Generation != 1 {
		t.Errorf("first generation after delete = %d, want 1", b.Generation)
	}
}

func testBackupExpireUploads(t *testing.T, h *bharness) {
	l, wh := newLocator()
	_, committed := h.upload(l, wh, 1, 2) // expires base+24h too, but committed
	old := h.begin(l, wh)
	var young store.BackupUploadID
	primitives.Random(young[:])
	if err := h.b().BeginBackup(h.ctx, store.BackupUpload{ID: young, Locator: l, WriteHash: wh, Created: base, Expires: base.Add(72 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	n, err := h.b().ExpireBackupUploads(h.ctx, base.Add(48*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("ExpireBackupUploads = %d, %v; want 1", n, err)
	}
	if err := h.b().PutBackupChunk(h.ctx, old, 0, []byte("x"), 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an expired upload is still there: %v", err)
	}
	if err := h.b().PutBackupChunk(h.ctx, young, 0, []byte("x"), 0); err != nil {
		t.Errorf("an unexpired upload was deleted: %v", err)
	}
	if b, err := h.b().LatestBackup(h.ctx, l); err != nil || *b != *committed {
		t.Errorf("a committed generation was expired: %+v, %v", b, err)
	}
}

func testBackupConcurrentCommits(t *testing.T, h *bharness) {
	l, wh := newLocator()
	const n = 8
	ids := make([]store.BackupUploadID, n)
	for i := range ids {
		ids[i] = h.begin(l, wh)
	}
	gens := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			b, err := h.b().CommitBackup(h.ctx, ids[i], 0, n)
			errs[i] = err
			if err == nil {
				gens[i] = b.Generation
			}
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i := range gens {
		if errs[i] != nil {
			t.Fatalf("concurrent commit %d: %v", i, errs[i])
		}
		if seen[gens[i]] || gens[i] < 1 || gens[i] > n {
			t.Fatalf("concurrent commits got generations %v, want 1..%d each once", gens, n)
		}
		seen[gens[i]] = true
	}
}

func testBackupDurability(t *testing.T, h *bharness) {
	l, wh := newLocator()
	chunks, b := h.upload(l, wh, 3, 2)
	h.reopen()
	if got, err := h.b().LatestBackup(h.ctx, l); err != nil || *got != *b {
		t.Fatalf("after reopen LatestBackup = %+v, %v", got, err)
	}
	if got, err := h.readAll(l, b.Generation); err != nil || !sameChunks(got, chunks) {
		t.Errorf("after reopen read %d chunks, %v", len(got), err)
	}
}
