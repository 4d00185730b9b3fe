package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parleyim/parley/internal/store"
)

// Encrypted backups (docs/server.md §5.7) on the tables of
// migrations/0003_backups.sql. Every write runs as one op of the single
// writer (writer.go), so checks and changes of one call cannot interleave
// with another's.

var _ store.Backups = (*Store)(nil)

const (
	// MaxBackupChunkFetch caps the limit of one BackupChunks call: a chunk
	// is up to about 1 MiB, so this bounds one call's memory.
	MaxBackupChunkFetch = 16
	// backupExpireChunk is how many pending uploads one
	// ExpireBackupUploads transaction deletes at most.
	backupExpireChunk = 100
)

// BeginBackup implements store.Backups. Durable: the device is told to
// start uploading only once the upload exists.
func (s *Store) BeginBackup(ctx context.Context, u store.BackupUpload) error {
	return s.write(ctx, true, func(t *wtx) error {
		if err := checkBackupWriter(t, u.Locator, u.WriteHash); err != nil {
			return err
		}
		_, err := t.conn.ExecContext(t.ctx, `INSERT INTO backups (upload, locator, write_hash, created, expires)
			VALUES (?, ?, ?, ?, ?)`, u.ID[:], u.Locator[:], u.WriteHash[:], fromTime(u.Created), fromTime(u.Expires))
		return dbError("begin backup", err)
	})
}

// checkBackupWriter fails with ErrBackupForbidden if a committed generation
// under locator carries another write hash.
func checkBackupWriter(t *wtx, locator store.BackupLocator, writeHash [32]byte) error {
	var other bool
	err := t.conn.QueryRowContext(t.ctx, `SELECT EXISTS (SELECT 1 FROM backups
		WHERE locator = ? AND generation IS NOT NULL AND write_hash != ?)`, locator[:], writeHash[:]).Scan(&other)
	if err != nil {
		return dbError("check backup writer", err)
	}
	if other {
		return store.ErrBackupForbidden
	}
	return nil
}

// PutBackupChunk implements store.Backups. Durable: the device moves on to
// the next chunk once it returns.
func (s *Store) PutBackupChunk(ctx context.Context, id store.BackupUploadID, index uint32, chunk []byte, maxBytes int64) error {
	return s.write(ctx, true, func(t *wtx) error {
		var (
			chunks, bytes int64
			generation    sql.NullInt64
		)
		err := t.conn.QueryRowContext(t.ctx, "SELECT chunks, bytes, generation FROM backups WHERE upload = ?",
			id[:]).Scan(&chunks, &bytes, &generation)
		if errors.Is(err, sql.ErrNoRows) || generation.Valid {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("put backup chunk", err)
		}
		if chunks > 0 && int64(index) == chunks-1 {
			var same bool
			err := t.conn.QueryRowContext(t.ctx, "SELECT chunk = ? FROM backup_chunks WHERE upload = ? AND idx = ?",
				blob(chunk), id[:], int64(index)).Scan(&same)
			if err != nil {
				return dbError("put backup chunk", err)
			}
			if same {
				return nil
			}
			return &store.FrameIndexError{Index: index, Next: uint32(chunks), Conflict: true}
		}
		if int64(index) != chunks {
			return &store.FrameIndexError{Index: index, Next: uint32(chunks)}
		}
		if maxBytes > 0 && bytes+int64(len(chunk)) > maxBytes {
			return &store.BackupTooLargeError{Limit: maxBytes}
		}
		if _, err := t.conn.ExecContext(t.ctx, "INSERT INTO backup_chunks (upload, idx, chunk) VALUES (?, ?, ?)",
			id[:], int64(index), blob(chunk)); err != nil {
			return dbError("put backup chunk", err)
		}
		_, err = t.conn.ExecContext(t.ctx, "UPDATE backups SET chunks = chunks + 1, bytes = bytes + ? WHERE upload = ?",
			int64(len(chunk)), id[:])
		return dbError("put backup chunk", err)
	})
}

// CommitBackup implements store.Backups in one durable op of the writer.
func (s *Store) CommitBackup(ctx context.Context, id store.BackupUploadID, chunks uint32, keep int) (*store.Backup, error) {
	if keep < 1 {
		return nil, fmt.Errorf("sqlite: commit backup: keep %d generations: must be at least 1", keep)
	}
	var b *store.Backup
	err := s.write(ctx, true, func(t *wtx) error {
		var (
			locator, writeHash    []byte
			generation            sql.NullInt64
			stored, size, created int64
		)
		err := t.conn.QueryRowContext(t.ctx, `SELECT locator, write_hash, generation, chunks, bytes, created
			FROM backups WHERE upload = ?`, id[:]).Scan(&locator, &writeHash, &generation, &stored, &size, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("commit backup", err)
		}
		if len(locator) != len(store.BackupLocator{}) || len(writeHash) != 32 || stored < 0 || stored > 1<<32-1 {
			return fmt.Errorf("sqlite: commit backup: malformed upload row: %w", ErrCorrupt)
		}
		b = &store.Backup{Locator: store.BackupLocator(locator), Chunks: uint32(stored), Size: size, Created: toTime(created)}
		if generation.Valid {
			b.Generation = uint64(generation.Int64)
			return nil // a retry of a commit that happened
		}
		if int64(chunks) != stored {
			return &store.BackupChunkCountError{Want: chunks, Stored: uint32(stored)}
		}
		if err := checkBackupWriter(t, b.Locator, [32]byte(writeHash)); err != nil {
			return err
		}
		var newest int64
		if err := t.conn.QueryRowContext(t.ctx, "SELECT coalesce(max(generation), 0) FROM backups WHERE locator = ?",
			locator).Scan(&newest); err != nil {
			return dbError("commit backup", err)
		}
		b.Generation = uint64(newest + 1)
		if _, err := t.conn.ExecContext(t.ctx, "UPDATE backups SET generation = ? WHERE upload = ?",
			newest+1, id[:]); err != nil {
			return dbError("commit backup", err)
		}
		_, err = t.conn.ExecContext(t.ctx, "DELETE FROM backups WHERE locator = ? AND generation <= ?",
			locator, newest+1-int64(keep))
		return dbError("commit backup: prune", err)
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// LatestBackup implements store.Backups.
func (s *Store) LatestBackup(ctx context.Context, locator store.BackupLocator) (*store.Backup, error) {
	var b *store.Backup
	err := s.read(func() error {
		var generation, chunks, size, created int64
		err := s.rdb.QueryRowContext(ctx, `SELECT generation, chunks, bytes, created FROM backups
			WHERE locator = ? AND generation IS NOT NULL ORDER BY generation DESC LIMIT 1`,
			locator[:]).Scan(&generation, &chunks, &size, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("read backup", err)
		}
		if generation < 1 || chunks < 0 || chunks > 1<<32-1 || size < 0 {
			return fmt.Errorf("sqlite: read backup: generation %d of %d chunks: %w", generation, chunks, ErrCorrupt)
		}
		b = &store.Backup{Locator: locator, Generation: uint64(generation), Chunks: uint32(chunks), Size: size, Created: toTime(created)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// BackupChunks implements store.Backups. limit is capped at
// MaxBackupChunkFetch. One statement reads the generation and its chunks,
// so a generation pruned meanwhile is ErrNotFound, never a partial read.
func (s *Store) BackupChunks(ctx context.Context, locator store.BackupLocator, generation uint64, from uint32, limit int) ([][]byte, error) {
	if generation < 1 || generation > 1<<63-1 {
		return nil, store.ErrNotFound
	}
	limit = min(max(limit, 0), MaxBackupChunkFetch)
	return s.readIndexed(ctx, from, "read backup chunks", `SELECT c.idx, c.chunk FROM backups b
			LEFT JOIN backup_chunks c ON c.upload = b.upload AND c.idx >= ? AND c.idx < ?
			WHERE b.locator = ? AND b.generation = ? ORDER BY c.idx`,
		int64(from), int64(from)+int64(limit), locator[:], int64(generation))
}

// DeleteBackups implements store.Backups in one durable op.
func (s *Store) DeleteBackups(ctx context.Context, locator store.BackupLocator, writeHash [32]byte) (int, error) {
	var n int64
	err := s.write(ctx, true, func(t *wtx) error {
		if err := checkBackupWriter(t, locator, writeHash); err != nil {
			return err
		}
		if err := t.conn.QueryRowContext(t.ctx, "SELECT count(*) FROM backups WHERE locator = ? AND generation IS NOT NULL",
			locator[:]).Scan(&n); err != nil {
			return dbError("delete backups", err)
		}
		_, err := t.conn.ExecContext(t.ctx, "DELETE FROM backups WHERE locator = ? AND write_hash = ?", locator[:], writeHash[:])
		return dbError("delete backups", err)
	})
	return int(n), err
}

// ExpireBackupUploads implements store.Backups, in transactions of at most
// backupExpireChunk uploads. Not durable (see the interface).
func (s *Store) ExpireBackupUploads(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := s.write(ctx, false, func(t *wtx) error {
			res, err := t.conn.ExecContext(t.ctx, `DELETE FROM backups WHERE upload IN (
				SELECT upload FROM backups WHERE generation IS NULL AND expires < ? LIMIT ?)`,
				fromTime(now), backupExpireChunk)
			if err != nil {
				return dbError("expire backup uploads", err)
			}
			n, err = res.RowsAffected()
			return dbError("expire backup uploads", err)
		})
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < backupExpireChunk {
			return total, nil
		}
	}
}
