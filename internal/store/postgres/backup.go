package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/store"
)

// Encrypted backups (docs/server.md §5.7) on the tables of
// migrations/0003_backups.sql.
//
// Concurrency. Writes to an upload's chunks hold its row locked (FOR NO
// KEY UPDATE), like mailbox frames, so concurrent puts at one index have
// exactly one winner. BeginBackup, CommitBackup and DeleteBackups first
// take a transaction-scoped advisory lock on the locator, so the checks of
// the write hash, the choice of the next generation and the pruning are
// made by one transaction at a time per locator, from any number of nodes.
// The lock key is the first 4 bytes of the locator: a collision only
// serialises two unrelated locators.
//
// Durability. Every write but ExpireBackupUploads commits durably.

var _ store.Backups = (*Store)(nil)

const (
	// MaxBackupChunkFetch caps the limit of one BackupChunks call: a chunk
	// is up to about 1 MiB, so this bounds one call's memory.
	MaxBackupChunkFetch = 16
	// backupExpireChunk is how many pending uploads one
	// ExpireBackupUploads transaction deletes at most.
	backupExpireChunk = 100
	// backupLockSpace is the first key of the two-key advisory lock on a
	// locator, so backup locks cannot collide with any other advisory lock.
	backupLockSpace = 0x6261 // "ba"
)

// lockLocator takes the transaction's advisory lock on a locator and
// fails with ErrBackupForbidden if a committed generation under it carries
// another write hash.
func lockLocator(ctx context.Context, tx pgx.Tx, locator store.BackupLocator, writeHash [32]byte) error {
	key := int32(uint32(locator[0])<<24 | uint32(locator[1])<<16 | uint32(locator[2])<<8 | uint32(locator[3]))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", int32(backupLockSpace), key); err != nil {
		return dbError("lock backup locator", err)
	}
	var other bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM backups
		WHERE locator = $1 AND generation IS NOT NULL AND write_hash != $2)`, locator[:], writeHash[:]).Scan(&other)
	if err != nil {
		return dbError("check backup writer", err)
	}
	if other {
		return store.ErrBackupForbidden
	}
	return nil
}

// BeginBackup implements store.Backups.
func (s *Store) BeginBackup(ctx context.Context, u store.BackupUpload) error {
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "begin backup", true, func(tx pgx.Tx) error {
			if err := lockLocator(ctx, tx, u.Locator, u.WriteHash); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO backups (upload, locator, write_hash, created, expires)
				VALUES ($1, $2, $3, $4, $5)`, u.ID[:], u.Locator[:], u.WriteHash[:], fromTime(u.Created), fromTime(u.Expires))
			return dbError("begin backup", err)
		})
	})
	return wrapStore("begin backup", err)
}

// PutBackupChunk implements store.Backups under the upload's row lock.
func (s *Store) PutBackupChunk(ctx context.Context, id store.BackupUploadID, index uint32, chunk []byte, maxBytes int64) error {
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "put backup chunk", true, func(tx pgx.Tx) error {
			var (
				chunks, bytes int64
				generation    *int64
			)
			err := tx.QueryRow(ctx, "SELECT chunks, bytes, generation FROM backups WHERE upload = $1 FOR NO KEY UPDATE",
				id[:]).Scan(&chunks, &bytes, &generation)
			if errors.Is(err, pgx.ErrNoRows) || (err == nil && generation != nil) {
				return store.ErrNotFound
			}
			if err != nil {
				return dbError("put backup chunk: lock upload", err)
			}
			if chunks > 0 && int64(index) == chunks-1 {
				var same bool
				err := tx.QueryRow(ctx, "SELECT chunk = $1 FROM backup_chunks WHERE upload = $2 AND idx = $3",
					blob(chunk), id[:], int64(index)).Scan(&same)
				if errors.Is(err, pgx.ErrNoRows) {
					return fmt.Errorf("postgres: put backup chunk: chunk %d of %d is missing: %w", index, chunks, ErrCorrupt)
				}
				if err != nil {
					return dbError("put backup chunk: compare last chunk", err)
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
			var q pgx.Batch
			q.Queue("INSERT INTO backup_chunks (upload, idx, chunk) VALUES ($1, $2, $3)", id[:], int64(index), blob(chunk))
			q.Queue("UPDATE backups SET chunks = $2, bytes = $3 WHERE upload = $1", id[:], chunks+1, bytes+int64(len(chunk)))
			return dbError("put backup chunk", tx.SendBatch(ctx, &q).Close())
		})
	})
	return wrapStore("put backup chunk", err)
}

// CommitBackup implements store.Backups under the locator's lock.
func (s *Store) CommitBackup(ctx context.Context, id store.BackupUploadID, chunks uint32, keep int) (*store.Backup, error) {
	if keep < 1 {
		return nil, fmt.Errorf("postgres: commit backup: keep %d generations: must be at least 1", keep)
	}
	var b *store.Backup
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "commit backup", true, func(tx pgx.Tx) error {
			var (
				locator, writeHash    []byte
				generation            *int64
				stored, size, created int64
			)
			read := func() error {
				err := tx.QueryRow(ctx, `SELECT locator, write_hash, generation, chunks, bytes, created
					FROM backups WHERE upload = $1`, id[:]).Scan(&locator, &writeHash, &generation, &stored, &size, &created)
				if errors.Is(err, pgx.ErrNoRows) {
					return store.ErrNotFound
				}
				if err != nil {
					return dbError("commit backup", err)
				}
				if len(locator) != len(store.BackupLocator{}) || len(writeHash) != 32 || stored < 0 || stored > 1<<32-1 {
					return fmt.Errorf("postgres: commit backup: malformed upload row: %w", ErrCorrupt)
				}
				return nil
			}
			if err := read(); err != nil {
				return err
			}
			if err := lockLocator(ctx, tx, store.BackupLocator(locator), [32]byte(writeHash)); err != nil {
				return err
			}
			// Read again under the lock: a concurrent commit of the same
			// upload may have finished while this one waited.
			if err := read(); err != nil {
				return err
			}
			b = &store.Backup{Locator: store.BackupLocator(locator), Chunks: uint32(stored), Size: size, Created: toTime(created)}
			if generation != nil {
				b.Generation = uint64(*generation)
				return nil
			}
			if int64(chunks) != stored {
				return &store.BackupChunkCountError{Want: chunks, Stored: uint32(stored)}
			}
			var newest int64
			if err := tx.QueryRow(ctx, "SELECT coalesce(max(generation), 0) FROM backups WHERE locator = $1",
				locator).Scan(&newest); err != nil {
				return dbError("commit backup", err)
			}
			b.Generation = uint64(newest + 1)
			var q pgx.Batch
			q.Queue("UPDATE backups SET generation = $2 WHERE upload = $1", id[:], newest+1)
			q.Queue("DELETE FROM backups WHERE locator = $1 AND generation <= $2", locator, newest+1-int64(keep))
			return dbError("commit backup", tx.SendBatch(ctx, &q).Close())
		})
	})
	if err != nil {
		return nil, wrapStore("commit backup", err)
	}
	return b, nil
}

// LatestBackup implements store.Backups.
func (s *Store) LatestBackup(ctx context.Context, locator store.BackupLocator) (*store.Backup, error) {
	var b *store.Backup
	err := s.use(ctx, func() error {
		var generation, chunks, size, created int64
		err := s.pool.QueryRow(ctx, `SELECT generation, chunks, bytes, created FROM backups
			WHERE locator = $1 AND generation IS NOT NULL ORDER BY generation DESC LIMIT 1`,
			locator[:]).Scan(&generation, &chunks, &size, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("read backup", err)
		}
		if generation < 1 || chunks < 0 || chunks > 1<<32-1 || size < 0 {
			return fmt.Errorf("postgres: read backup: generation %d of %d chunks: %w", generation, chunks, ErrCorrupt)
		}
		b = &store.Backup{Locator: locator, Generation: uint64(generation), Chunks: uint32(chunks), Size: size, Created: toTime(created)}
		return nil
	})
	if err != nil {
		return nil, wrapStore("read backup", err)
	}
	return b, nil
}

// BackupChunks implements store.Backups. limit is capped at
// MaxBackupChunkFetch. One statement reads the generation and its chunks:
// chunks of a committed generation never change, so its snapshot is
// whole.
func (s *Store) BackupChunks(ctx context.Context, locator store.BackupLocator, generation uint64, from uint32, limit int) ([][]byte, error) {
	if generation < 1 || generation > 1<<63-1 {
		return nil, store.ErrNotFound
	}
	limit = min(max(limit, 0), MaxBackupChunkFetch)
	return s.readIndexed(ctx, from, "read backup chunks", `SELECT c.idx, c.chunk FROM backups b
			LEFT JOIN backup_chunks c ON c.upload = b.upload AND c.idx >= $1 AND c.idx < $2
			WHERE b.locator = $3 AND b.generation = $4 ORDER BY c.idx`,
		int64(from), int64(from)+int64(limit), locator[:], int64(generation))
}

// DeleteBackups implements store.Backups under the locator's lock.
func (s *Store) DeleteBackups(ctx context.Context, locator store.BackupLocator, writeHash [32]byte) (int, error) {
	var n int64
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "delete backups", true, func(tx pgx.Tx) error {
			if err := lockLocator(ctx, tx, locator, writeHash); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM backups WHERE locator = $1 AND generation IS NOT NULL",
				locator[:]).Scan(&n); err != nil {
				return dbError("delete backups", err)
			}
			_, err := tx.Exec(ctx, "DELETE FROM backups WHERE locator = $1 AND write_hash = $2", locator[:], writeHash[:])
			return dbError("delete backups", err)
		})
	})
	return int(n), wrapStore("delete backups", err)
}

// ExpireBackupUploads implements store.Backups, in transactions of at most
// backupExpireChunk uploads committed with synchronous_commit off.
func (s *Store) ExpireBackupUploads(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := s.use(ctx, func() error {
			return s.inTx(ctx, "expire backup uploads", false, func(tx pgx.Tx) error {
				tag, err := tx.Exec(ctx, `DELETE FROM backups WHERE upload IN (
					SELECT upload FROM backups WHERE generation IS NULL AND expires < $1
					ORDER BY upload LIMIT $2 FOR UPDATE SKIP LOCKED)`, fromTime(now), backupExpireChunk)
				if err != nil {
					return dbError("expire backup uploads", err)
				}
				n = tag.RowsAffected()
				return nil
			})
		})
		if err != nil {
			return total, wrapStore("expire backup uploads", err)
		}
		total += int(n)
		if n < backupExpireChunk {
			return total, nil
		}
	}
}
