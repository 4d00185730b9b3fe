package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parleyim/parley/internal/store"
)

var _ store.Mailboxes = (*Store)(nil)

const (
	// MaxFrameFetch caps the limit of one Frames call: a frame is up to
	// about 1 MiB, so this bounds one call's memory to tens of MiB.
	MaxFrameFetch = 64
	// mailboxExpireChunk is how many mailboxes one ExpireMailboxes
	// transaction deletes at most. Expired mailboxes are mostly offers
	// without frames (3 KB); the chunk keeps a purge after an abusive
	// burst from holding up sends.
	mailboxExpireChunk = 100
)

// CreateMailbox implements store.Mailboxes. The insert is one durable op
// of a group commit (writer.go): the new device is told its mailbox exists
// only once it is on disk.
func (s *Store) CreateMailbox(ctx context.Context, address store.MailboxAddress, offer []byte, created, expires time.Time) error {
	return s.write(ctx, true, func(t *wtx) error {
		res, err := t.conn.ExecContext(t.ctx, `INSERT INTO mailboxes (address, offer, created, expires)
			VALUES (?, ?, ?, ?) ON CONFLICT (address) DO NOTHING`,
			address[:], blob(offer), fromTime(created), fromTime(expires))
		if err != nil {
			return dbError("create mailbox", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return dbError("create mailbox", err)
		}
		if n == 0 {
			return store.ErrMailboxExists
		}
		return nil
	})
}

// Mailbox implements store.Mailboxes.
func (s *Store) Mailbox(ctx context.Context, address store.MailboxAddress) (*store.Mailbox, error) {
	var m *store.Mailbox
	err := s.read(func() error {
		var (
			frames, bytes, created, expires int64
			offer                           []byte
		)
		err := s.rdb.QueryRowContext(ctx, `SELECT offer, frames, bytes, created, expires
			FROM mailboxes WHERE address = ?`, address[:]).Scan(&offer, &frames, &bytes, &created, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("read mailbox", err)
		}
		if frames < 0 || frames > 1<<32-1 || bytes < 0 {
			return fmt.Errorf("sqlite: read mailbox: %d frames of %d bytes: %w", frames, bytes, ErrCorrupt)
		}
		m = &store.Mailbox{
			Address: address, Offer: offer, Frames: uint32(frames), Bytes: bytes,
			Created: toTime(created), Expires: toTime(expires),
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// AppendFrame implements store.Mailboxes. The checks and the insert run
// inside one op of the single writer, so two appends at the same index
// cannot both see it free: exactly one succeeds. The append is durable:
// the approving device moves on to the next frame once it returns.
func (s *Store) AppendFrame(ctx context.Context, address store.MailboxAddress, index uint32, frame []byte, maxBytes int64, extendTo time.Time) error {
	return s.write(ctx, true, func(t *wtx) error {
		var frames, bytes int64
		err := t.conn.QueryRowContext(t.ctx, "SELECT frames, bytes FROM mailboxes WHERE address = ?",
			address[:]).Scan(&frames, &bytes)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("append frame", err)
		}
		next := uint32(frames)
		if frames > 0 && int64(index) == frames-1 {
			// A retry of the last frame is a no-op if it is the same frame;
			// compared in SQL so the stored frame is not copied out.
			var same bool
			err := t.conn.QueryRowContext(t.ctx, "SELECT frame = ? FROM mailbox_frames WHERE address = ? AND idx = ?",
				blob(frame), address[:], int64(index)).Scan(&same)
			if err != nil {
				return dbError("append frame", err)
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
		if _, err := t.conn.ExecContext(t.ctx, "INSERT INTO mailbox_frames (address, idx, frame) VALUES (?, ?, ?)",
			address[:], int64(index), blob(frame)); err != nil {
			return dbError("append frame", err)
		}
		if _, err := t.conn.ExecContext(t.ctx, `UPDATE mailboxes
			SET frames = frames + 1, bytes = bytes + ?, expires = max(expires, ?) WHERE address = ?`,
			int64(len(frame)), fromTime(extendTo), address[:]); err != nil {
			return dbError("append frame", err)
		}
		return nil
	})
}

// Frames implements store.Mailboxes. limit is capped at MaxFrameFetch. One
// statement reads the mailbox row and the frames, so "unknown mailbox" and
// "no frames yet" come from the same snapshot.
func (s *Store) Frames(ctx context.Context, address store.MailboxAddress, from uint32, limit int) ([][]byte, error) {
	if limit <= 0 {
		_, err := s.Mailbox(ctx, address)
		return nil, err
	}
	limit = min(limit, MaxFrameFetch)
	return s.readIndexed(ctx, from, "read frames", `SELECT f.idx, f.frame FROM mailboxes m
			LEFT JOIN mailbox_frames f ON f.address = m.address AND f.idx >= ?
			WHERE m.address = ? ORDER BY f.idx LIMIT ?`,
		int64(from), address[:], limit)
}

// DeleteMailbox implements store.Mailboxes. The frames go with the mailbox
// (ON DELETE CASCADE). Not durable (see writer.go): a deletion lost to a
// power failure is redone by ExpireMailboxes.
func (s *Store) DeleteMailbox(ctx context.Context, address store.MailboxAddress) error {
	return s.write(ctx, false, func(t *wtx) error {
		_, err := t.conn.ExecContext(t.ctx, "DELETE FROM mailboxes WHERE address = ?", address[:])
		return dbError("delete mailbox", err)
	})
}

// ExpireMailboxes implements store.Mailboxes, in transactions of at most
// mailboxExpireChunk mailboxes. Not durable, like DeleteMailbox.
func (s *Store) ExpireMailboxes(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := s.write(ctx, false, func(t *wtx) error {
			res, err := t.conn.ExecContext(t.ctx, `DELETE FROM mailboxes WHERE address IN (
				SELECT address FROM mailboxes WHERE expires < ? LIMIT ?)`, fromTime(now), mailboxExpireChunk)
			if err != nil {
				return dbError("expire mailboxes", err)
			}
			n, err = res.RowsAffected()
			return dbError("expire mailboxes", err)
		})
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < mailboxExpireChunk {
			return total, nil
		}
	}
}

// readIndexed runs a query that left-joins a parent row to its indexed
// blobs (see scanIndexed) and returns the blobs, or store.ErrNotFound if
// the parent is missing.
func (s *Store) readIndexed(ctx context.Context, from uint32, what, query string, args ...any) ([][]byte, error) {
	var out [][]byte
	err := s.read(func() error {
		rows, err := s.rdb.QueryContext(ctx, query, args...)
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
		return nil, err
	}
	return out, nil
}

// scanIndexed reads the rows of a query that left-joins a parent row (a
// mailbox, a backup generation) with a run of its indexed blobs (frames,
// chunks), ordered by index: (idx, blob), with a NULL idx for a parent
// without blobs in the range. It returns the blobs, which must run
// without gaps from from, and whether the parent was found at all. An
// empty blob comes back as an empty, non-nil slice.
func scanIndexed(rows *sql.Rows, from uint32, what string) (out [][]byte, found bool, err error) {
	defer rows.Close()
	want := int64(from)
	for rows.Next() {
		found = true
		var (
			idx  sql.NullInt64
			blob []byte
		)
		if err := rows.Scan(&idx, &blob); err != nil {
			return nil, false, dbError(what, err)
		}
		if !idx.Valid {
			continue // the parent, without blobs from this index
		}
		if idx.Int64 != want {
			return nil, false, fmt.Errorf("sqlite: %s: index %d where %d was due: %w", what, idx.Int64, want, ErrCorrupt)
		}
		want++
		if blob == nil {
			blob = []byte{}
		}
		out = append(out, blob)
	}
	if err := rows.Err(); err != nil {
		return nil, false, dbError(what, err)
	}
	return out, found, nil
}
