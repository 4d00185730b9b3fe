package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/store"
)

// Provisioning mailboxes (docs/server.md §5.6), on the tables of
// migrations/0002_mailboxes.sql.
//
// Concurrency. Every write to a mailbox's frames holds the mailbox row
// locked: AppendFrame locks it (FOR NO KEY UPDATE) before it reads the
// frame count, DeleteMailbox and ExpireMailboxes delete it (which locks
// it). Appends at one index, from any number of nodes, therefore run one
// after another: the first inserts the frame and raises the count, and
// each later one, once it holds the lock, reads the raised count (at READ
// COMMITTED a locking read returns the row's newest committed version)
// and fails with *store.FrameIndexError. Exactly one wins. Each
// transaction locks one mailbox row, or, in ExpireMailboxes, several in
// address order, so they cannot deadlock among themselves; the retries of
// tx.go stay as the backstop they are for the rest of the engine.
//
// Durability. CreateMailbox and AppendFrame commit durably: the new device
// is told its mailbox exists, and the approving device moves on to the
// next frame, only once the write would survive a crash of the database
// server. DeleteMailbox and ExpireMailboxes commit with synchronous_commit
// off (tx.go), as the SQLite engine's deletions skip the fsync: a deletion
// lost to a crash of the database server leaves the mailbox to the next
// expiry sweep, which deletes it again.
//
// Errors never name the address: knowing it is the capability to read
// the mailbox, and errors end up in logs.

var _ store.Mailboxes = (*Store)(nil)

const (
	// MaxFrameFetch caps the limit of one Frames call: a frame is up to
	// about 1 MiB, so this bounds one call's memory to tens of MiB.
	MaxFrameFetch = 64
	// mailboxExpireChunk is how many mailboxes one ExpireMailboxes
	// transaction deletes at most. Expired mailboxes are mostly offers
	// without frames; the chunk bounds how many rows one transaction
	// holds locked during a purge after an abusive burst.
	mailboxExpireChunk = 100
)

// CreateMailbox implements store.Mailboxes. It commits durably. Of two
// concurrent creations at one address, the second waits for the first's
// insert and then, finding the address taken, stores nothing and reports
// ErrMailboxExists.
func (s *Store) CreateMailbox(ctx context.Context, address store.MailboxAddress, offer []byte, created, expires time.Time) error {
	err := s.use(ctx, func() error {
		// One statement is a transaction of its own; withRetry gives it
		// the engine's bounded retries, although a single-row insert has
		// no lock to deadlock on.
		return withRetry(ctx, "create mailbox", func() error {
			tag, err := s.pool.Exec(ctx, `INSERT INTO mailboxes (address, offer, created, expires)
				VALUES ($1, $2, $3, $4) ON CONFLICT (address) DO NOTHING`,
				address[:], blob(offer), fromTime(created), fromTime(expires))
			if err != nil {
				return dbError("create mailbox", err)
			}
			if tag.RowsAffected() == 0 {
				return store.ErrMailboxExists
			}
			return nil
		})
	})
	return wrapStore("create mailbox", err)
}

// Mailbox implements store.Mailboxes.
func (s *Store) Mailbox(ctx context.Context, address store.MailboxAddress) (*store.Mailbox, error) {
	var m *store.Mailbox
	err := s.use(ctx, func() error {
		var (
			frames, bytes, created, expires int64
			offer                           []byte
		)
		err := s.pool.QueryRow(ctx, `SELECT offer, frames, bytes, created, expires
			FROM mailboxes WHERE address = $1`, address[:]).Scan(&offer, &frames, &bytes, &created, &expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("read mailbox", err)
		}
		if frames < 0 || frames > 1<<32-1 || bytes < 0 {
			return fmt.Errorf("postgres: read mailbox: %d frames of %d bytes: %w", frames, bytes, ErrCorrupt)
		}
		m = &store.Mailbox{
			Address: address, Offer: offer, Frames: uint32(frames), Bytes: bytes,
			Created: toTime(created), Expires: toTime(expires),
		}
		return nil
	})
	if err != nil {
		return nil, wrapStore("read mailbox", err)
	}
	return m, nil
}

// AppendFrame implements store.Mailboxes. The checks and the insert run
// under the mailbox's row lock, so two appends at one index cannot both
// see it free (see the top of this file). It commits durably.
func (s *Store) AppendFrame(ctx context.Context, address store.MailboxAddress, index uint32, frame []byte, maxBytes int64, extendTo time.Time) error {
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "append frame", true, func(tx pgx.Tx) error {
			var frames, bytes int64
			err := tx.QueryRow(ctx, "SELECT frames, bytes FROM mailboxes WHERE address = $1 FOR NO KEY UPDATE",
				address[:]).Scan(&frames, &bytes)
			if errors.Is(err, pgx.ErrNoRows) {
				return store.ErrNotFound
			}
			if err != nil {
				return dbError("append frame: lock mailbox", err)
			}
			if frames < 0 || frames > 1<<32-1 {
				return fmt.Errorf("postgres: append frame: mailbox holds %d frames: %w", frames, ErrCorrupt)
			}
			next := uint32(frames)
			if frames > 0 && int64(index) == frames-1 {
				// A retry of the last frame is a no-op if it is the same
				// frame; compared in SQL so the stored frame (up to 1 MiB)
				// is not copied out. It commits nothing but the lock.
				var same bool
				err := tx.QueryRow(ctx, "SELECT frame = $1 FROM mailbox_frames WHERE address = $2 AND idx = $3",
					blob(frame), address[:], int64(index)).Scan(&same)
				if errors.Is(err, pgx.ErrNoRows) {
					return fmt.Errorf("postgres: append frame: frame %d of %d is missing: %w", index, frames, ErrCorrupt)
				}
				if err != nil {
					return dbError("append frame: compare last frame", err)
				}
				if same {
					return nil
				}
				return &store.FrameIndexError{Index: index, Next: next, Conflict: true}
			}
			if int64(index) != frames {
				return &store.FrameIndexError{Index: index, Next: next}
			}
			if maxBytes > 0 && bytes+int64(len(frame)) > maxBytes {
				return &store.MailboxFullError{Limit: maxBytes}
			}
			// The frame and the counters in one round trip. The counters
			// are written from the locked row, not recomputed: under the
			// lock, what this transaction read is the truth.
			var q pgx.Batch
			q.Queue("INSERT INTO mailbox_frames (address, idx, frame) VALUES ($1, $2, $3)",
				address[:], int64(index), blob(frame))
			q.Queue(`UPDATE mailboxes SET frames = $2, bytes = $3, expires = GREATEST(expires, $4)
				WHERE address = $1`, address[:], frames+1, bytes+int64(len(frame)), fromTime(extendTo))
			return dbError("append frame", tx.SendBatch(ctx, &q).Close())
		})
	})
	return wrapStore("append frame", err)
}

// Frames implements store.Mailboxes. limit is capped at MaxFrameFetch. It
// takes no lock: a frame is committed together with the count that makes
// it the next one, and frames are never changed, so one statement's
// snapshot holds a mailbox's frames without gaps. That statement reads the
// mailbox row and the frames together, so "unknown mailbox" and "no frames
// yet" come from the same snapshot.
func (s *Store) Frames(ctx context.Context, address store.MailboxAddress, from uint32, limit int) ([][]byte, error) {
	if limit <= 0 {
		_, err := s.Mailbox(ctx, address)
		return nil, err
	}
	limit = min(limit, MaxFrameFetch)
	return s.readIndexed(ctx, from, "read frames", `SELECT f.idx, f.frame FROM mailboxes m
			LEFT JOIN mailbox_frames f ON f.address = m.address AND f.idx >= $1
			WHERE m.address = $2 ORDER BY f.idx LIMIT $3`,
		int64(from), address[:], limit)
}

// DeleteMailbox implements store.Mailboxes. The frames go with the mailbox
// (ON DELETE CASCADE). It commits with synchronous_commit off: a deletion
// lost to a crash of the database server is redone by ExpireMailboxes.
func (s *Store) DeleteMailbox(ctx context.Context, address store.MailboxAddress) error {
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "delete mailbox", false, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "DELETE FROM mailboxes WHERE address = $1", address[:])
			return dbError("delete mailbox", err)
		})
	})
	return wrapStore("delete mailbox", err)
}

// ExpireMailboxes implements store.Mailboxes, in transactions of at most
// mailboxExpireChunk mailboxes, each committed with synchronous_commit
// off like DeleteMailbox: an expiry lost in a crash is done again by the
// next sweep.
func (s *Store) ExpireMailboxes(ctx context.Context, now time.Time) (int, error) {
	total := 0
	err := s.use(ctx, func() error {
		for {
			var deleted, found int
			err := s.inTx(ctx, "expire mailboxes", false, func(tx pgx.Tx) error {
				var err error
				deleted, found, err = expireMailboxChunk(ctx, tx, fromTime(now))
				return err
			})
			if err != nil {
				return err
			}
			total += deleted
			if found < mailboxExpireChunk {
				return nil
			}
		}
	})
	return total, wrapStore("expire mailboxes", err)
}

// expireMailboxChunk deletes up to mailboxExpireChunk mailboxes that
// expired before before. It first locks them in address order, so that
// sweeps of several nodes at once queue behind each other instead of
// deadlocking. A mailbox whose append was holding the lock is checked
// again once the lock is ours (READ COMMITTED rechecks a locked row's
// newest version), so one the append just extended is not deleted. found
// is how many it locked (fewer than the chunk: that was the last one).
func expireMailboxChunk(ctx context.Context, tx pgx.Tx, before int64) (deleted, found int, err error) {
	rows, err := tx.Query(ctx, `SELECT address FROM mailboxes WHERE expires < $1
		ORDER BY address LIMIT $2 FOR UPDATE`, before, mailboxExpireChunk)
	if err != nil {
		return 0, 0, dbError("expire mailboxes: lock", err)
	}
	addrs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return 0, 0, dbError("expire mailboxes: lock", err)
	}
	if len(addrs) == 0 {
		return 0, 0, nil
	}
	// The rows are locked: no one can extend or delete them before this
	// statement runs.
	tag, err := tx.Exec(ctx, "DELETE FROM mailboxes WHERE address = ANY($1)", addrs)
	if err != nil {
		return 0, 0, dbError("expire mailboxes", err)
	}
	return int(tag.RowsAffected()), len(addrs), nil
}

// readIndexed runs a query that left-joins a parent row to its indexed
// blobs (see scanIndexed) and returns the blobs, or store.ErrNotFound if
// the parent is missing.
func (s *Store) readIndexed(ctx context.Context, from uint32, what, query string, args ...any) ([][]byte, error) {
	var out [][]byte
	err := s.use(ctx, func() error {
		rows, err := s.pool.Query(ctx, query, args...)
		if err != nil {
			return dbError(what, err)
		}
		var found bool
		if out, found, err = scanIndexed(rows, from, what); err != nil {
			return err
		}
		if !found {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, wrapStore(what, err)
	}
	return out, nil
}

// scanIndexed reads the rows of a query that left-joins a parent row (a
// mailbox, a backup generation) with a run of its indexed blobs (frames,
// chunks), ordered by index: (idx, blob), with a NULL idx for a parent
// without blobs in the range. It returns the blobs, which must run
// without gaps from from, and whether the parent was found at all. An
// empty blob comes back as an empty, non-nil slice.
func scanIndexed(rows pgx.Rows, from uint32, what string) (out [][]byte, found bool, err error) {
	defer rows.Close()
	want := int64(from)
	for rows.Next() {
		found = true
		var (
			idx  *int64
			blob []byte
		)
		if err := rows.Scan(&idx, &blob); err != nil {
			return nil, false, dbError(what, err)
		}
		if idx == nil {
			continue // the parent, without blobs from this index
		}
		if *idx != want {
			return nil, false, fmt.Errorf("postgres: %s: index %d where %d was due: %w", what, *idx, want, ErrCorrupt)
		}
		want++
		if blob == nil {
			blob = []byte{} // suite: an empty blob is an empty slice
		}
		out = append(out, blob)
	}
	if err := rows.Err(); err != nil {
		return nil, false, dbError(what, err)
	}
	return out, found, nil
}
