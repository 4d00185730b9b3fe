package server

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

// The backup store (docs/server.md §5.7, docs/backup.md). A device uploads
// its age-encrypted archive in chunks under a locator derived from the
// recovery key, then commits it as the locator's newest generation; a
// restoring device, which has no account yet, downloads it by locator.
//
// What the server learns: that some authenticated device uploaded so many
// bytes under some locator. It keeps neither the uploader nor the account
// with the backup: the rows hold the locator, the hash of the write token
// and ciphertext. The write token (also derived from the recovery key)
// guards replacing and deleting, so another account that learned a
// locator still could not destroy the backups under it.

const (
	// MaxBackupChunk is the largest chunk PutBackupChunk accepts, in bytes.
	MaxBackupChunk = 1 << 20
	// backupChunkPage is how many chunks a GetBackup stream reads at once.
	backupChunkPage = 4
	// locatorSize and writeTokenSize are the sizes of what the recovery key
	// derives (docs/backup.md).
	locatorSize    = 32
	writeTokenSize = 32
	// ipLimitBackup names the per-IP backup download limit in RateLimited
	// details.
	ipLimitBackup = "backup"
)

var errBackupsUnavailable = errors.New("backups are not available on this server: its store keeps no backups")

// errNoBackup is what a download of a locator without backups gets.
var errNoBackup = errors.New("no backup is stored under this recovery key: check the key, or the backup was deleted or replaced by a rotation")

type backupService struct{ s *Server }

func (b *backupService) backups() (store.Backups, error) {
	if b.s.backups == nil {
		return nil, errBackupsUnavailable
	}
	return b.s.backups, nil
}

func locatorOf(l []byte) (store.BackupLocator, error) {
	if len(l) != locatorSize {
		return store.BackupLocator{}, badRequest("backup locator must be %d bytes, got %d", locatorSize, len(l))
	}
	return store.BackupLocator(l), nil
}

// writeHash is what the store keeps of a write token.
func writeHash(token []byte) ([32]byte, error) {
	if len(token) != writeTokenSize {
		return [32]byte{}, badRequest("backup write token must be %d bytes, got %d", writeTokenSize, len(token))
	}
	return primitives.Hash(primitives.LabelBackupWriteHash, token), nil
}

func uploadID(b []byte) (store.BackupUploadID, error) {
	if len(b) != len(store.BackupUploadID{}) {
		return store.BackupUploadID{}, badRequest("backup upload id must be %d bytes, got %d", len(store.BackupUploadID{}), len(b))
	}
	return store.BackupUploadID(b), nil
}

// guarded checks the locator and write token of a call that changes the
// backups under a locator.
func (b *backupService) guarded(locator, token []byte) (store.Backups, store.BackupLocator, [32]byte, error) {
	bs, err := b.backups()
	if err != nil {
		return nil, store.BackupLocator{}, [32]byte{}, err
	}
	l, err := locatorOf(locator)
	if err != nil {
		return nil, store.BackupLocator{}, [32]byte{}, err
	}
	wh, err := writeHash(token)
	if err != nil {
		return nil, store.BackupLocator{}, [32]byte{}, err
	}
	return bs, l, wh, nil
}

// BeginBackup starts an upload. Authenticated.
func (b *backupService) BeginBackup(ctx context.Context, req *connect.Request[parleyv1.BeginBackupRequest]) (*connect.Response[parleyv1.BeginBackupResponse], error) {
	bs, l, wh, err := b.guarded(req.Msg.Locator, req.Msg.WriteToken)
	if err != nil {
		return nil, err
	}
	if req.Msg.Size < 0 {
		return nil, badRequest("backup size %d is negative", req.Msg.Size)
	}
	if req.Msg.Size > b.s.cfg.MaxBackupSize {
		return nil, &store.BackupTooLargeError{Limit: b.s.cfg.MaxBackupSize}
	}
	var id store.BackupUploadID
	primitives.Random(id[:])
	now := b.s.now()
	if err := bs.BeginBackup(ctx, store.BackupUpload{
		ID: id, Locator: l, WriteHash: wh, Created: now, Expires: now.Add(b.s.cfg.BackupUploadTTL),
	}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&parleyv1.BeginBackupResponse{UploadId: id[:], MaxChunk: MaxBackupChunk}), nil
}

// PutBackupChunk appends a chunk. Authenticated; the upload id is the
// capability.
func (b *backupService) PutBackupChunk(ctx context.Context, req *connect.Request[parleyv1.PutBackupChunkRequest]) (*connect.Response[parleyv1.PutBackupChunkResponse], error) {
	bs, err := b.backups()
	if err != nil {
		return nil, err
	}
	id, err := uploadID(req.Msg.UploadId)
	if err != nil {
		return nil, err
	}
	if n := len(req.Msg.Chunk); n > MaxBackupChunk {
		return nil, badRequest("backup chunk of %d bytes exceeds the limit of %d bytes (MaxBackupChunk)", n, MaxBackupChunk)
	}
	err = bs.PutBackupChunk(ctx, id, req.Msg.Index, req.Msg.Chunk, b.s.cfg.MaxBackupSize)
	var fi *store.FrameIndexError
	if errors.As(err, &fi) {
		if fi.Conflict {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
				"backup chunk %d is already stored with different content; the upload expects index %d", fi.Index, fi.Next))
		}
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"backup chunk at index %d is out of order; the upload expects index %d", fi.Index, fi.Next))
	}
	if err != nil {
		return nil, noUpload(err)
	}
	return connect.NewResponse(&parleyv1.PutBackupChunkResponse{}), nil
}

// noUpload turns the store's ErrNotFound into an error that says what to
// do.
func noUpload(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no backup upload with this id in progress (it expired or was committed); start the backup again", store.ErrNotFound)
	}
	return err
}

// CommitBackup makes an upload the newest generation. Authenticated.
func (b *backupService) CommitBackup(ctx context.Context, req *connect.Request[parleyv1.CommitBackupRequest]) (*connect.Response[parleyv1.CommitBackupResponse], error) {
	bs, err := b.backups()
	if err != nil {
		return nil, err
	}
	id, err := uploadID(req.Msg.UploadId)
	if err != nil {
		return nil, err
	}
	g, err := bs.CommitBackup(ctx, id, req.Msg.Chunks, b.s.cfg.BackupGenerations)
	if err != nil {
		return nil, noUpload(err)
	}
	b.s.log.InfoContext(ctx, "backup committed", "generation", g.Generation, "bytes", g.Size)
	return connect.NewResponse(&parleyv1.CommitBackupResponse{Generation: g.Generation}), nil
}

// GetBackup streams a generation. Unauthenticated; every call costs the
// peer a token of its backup limit, which bounds how fast one address can
// probe for locators (on top of the 2^256 guesses it would need).
func (b *backupService) GetBackup(ctx context.Context, req *connect.Request[parleyv1.GetBackupRequest], stream *connect.ServerStream[parleyv1.GetBackupResponse]) error {
	s := b.s
	bs, err := b.backups()
	if err != nil {
		return err
	}
	if d := s.backupLimits.wait(peerHost(req.Peer().Addr), s.now()); d > 0 {
		s.metrics.limited.WithLabelValues(ipLimitBackup).Inc()
		return &rateLimited{limit: ipLimitBackup, after: d}
	}
	l, err := locatorOf(req.Msg.Locator)
	if err != nil {
		return err
	}
	latest, err := bs.LatestBackup(ctx, l)
	if errors.Is(err, store.ErrNotFound) {
		return errNoBackup
	}
	if err != nil {
		return err
	}
	gen := latest
	if req.Msg.Generation != 0 && req.Msg.Generation != latest.Generation {
		// An older generation: its size is not known without reading it,
		// so the first message gives only the generation.
		gen = &store.Backup{Locator: l, Generation: req.Msg.Generation}
	}
	first := &parleyv1.GetBackupResponse{Generation: gen.Generation, Size: gen.Size, Chunks: gen.Chunks}
	sent := false
	for from := uint32(0); ; {
		chunks, err := bs.BackupChunks(ctx, l, gen.Generation, from, backupChunkPage)
		if errors.Is(err, store.ErrNotFound) {
			// Pruned or deleted under us: the client starts again.
			return errNoBackup
		}
		if err != nil {
			return err
		}
		for _, c := range chunks {
			m := &parleyv1.GetBackupResponse{Chunk: c}
			if !sent {
				first.Chunk, m, sent = c, first, true
			}
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		from += uint32(len(chunks))
		if len(chunks) < backupChunkPage {
			break
		}
	}
	if !sent {
		return stream.Send(first) // an empty backup
	}
	return nil
}

// DeleteBackups deletes every generation under a locator. Authenticated.
func (b *backupService) DeleteBackups(ctx context.Context, req *connect.Request[parleyv1.DeleteBackupsRequest]) (*connect.Response[parleyv1.DeleteBackupsResponse], error) {
	bs, l, wh, err := b.guarded(req.Msg.Locator, req.Msg.WriteToken)
	if err != nil {
		return nil, err
	}
	n, err := bs.DeleteBackups(ctx, l, wh)
	if err != nil {
		return nil, err
	}
	b.s.log.InfoContext(ctx, "backups deleted", "generations", n)
	return connect.NewResponse(&parleyv1.DeleteBackupsResponse{Deleted: uint32(n)}), nil
}

// expireBackupUploads deletes uploads that were never committed (RunExpiry
// calls it each tick).
func (s *Server) expireBackupUploads(ctx context.Context) {
	if s.backups == nil {
		return
	}
	n, err := s.backups.ExpireBackupUploads(ctx, s.now())
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("expiring backup uploads", "err", err)
	}
	if n > 0 {
		s.log.Info("expired backup uploads", "count", n)
	}
}
