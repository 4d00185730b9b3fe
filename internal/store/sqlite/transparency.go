package sqlite

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/parleyim/parley/internal/store"
)

// Key transparency on the tables of migrations/0004_transparency.sql.
// Writes run as ops of the single writer (writer.go); the sequencer role is
// a flag of the Store, since one process owns a SQLite database (a second
// process opening the same file would also be refused by the epoch
// numbering: CommitKTEpoch checks the epoch extends the stored log inside
// its transaction).

var _ store.Transparency = (*Store)(nil)

// maxKTFetch caps one PendingKT or KTEpochs call.
const maxKTFetch = 1 << 20

// queueKT appends a published device list to the pending queue, in the
// transaction that publishes it.
func (t *wtx) queueKT(username string, listVersion uint64, signed []byte) error {
	if listVersion < 1 || listVersion-1 > store.MaxKTVersion {
		return fmt.Errorf("%w: device-list version %d is beyond the transparency log's %d", store.ErrVersionConflict, listVersion, store.MaxKTVersion+1)
	}
	_, err := t.st.queueKT.ExecContext(t.ctx, username, int64(listVersion-1), blob(signed))
	return dbError("queue transparency update", err)
}

// ktHistory reports whether username has versions in the log or pending.
func (t *wtx) ktHistory(username string) (bool, error) {
	var used bool
	err := t.conn.QueryRowContext(t.ctx, `SELECT EXISTS (SELECT 1 FROM kt_values WHERE username = ?)
		OR EXISTS (SELECT 1 FROM kt_pending WHERE username = ?)`, username, username).Scan(&used)
	return used, dbError("read transparency history", err)
}

// PendingKT implements store.Transparency.
func (s *Store) PendingKT(ctx context.Context, after uint64, limit int) ([]store.KTUpdate, error) {
	limit = min(max(limit, 0), maxKTFetch)
	if after >= math.MaxInt64 {
		return nil, nil
	}
	var us []store.KTUpdate
	err := s.read(func() error {
		rows, err := s.rdb.QueryContext(ctx, "SELECT seq, username, version, value FROM kt_pending WHERE seq > ? ORDER BY seq LIMIT ?", int64(after), limit)
		if err != nil {
			return dbError("read pending transparency updates", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				u        store.KTUpdate
				seq, ver int64
			)
			if err := rows.Scan(&seq, &u.Username, &ver, &u.Value); err != nil {
				return dbError("read pending transparency updates", err)
			}
			u.Seq, u.Version = uint64(seq), uint32(ver)
			us = append(us, u)
		}
		return dbError("read pending transparency updates", rows.Err())
	})
	return us, err
}

// PendingKTCount implements store.Transparency.
func (s *Store) PendingKTCount(ctx context.Context) (int, error) {
	var n int
	err := s.read(func() error {
		return dbError("count pending transparency updates", s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM kt_pending").Scan(&n))
	})
	return n, err
}

// sequencer is the SQLite engine's store.KTSequencer.
type sequencer struct {
	s        *Store
	released atomic.Bool
}

// AcquireKTSequencer implements store.Transparency: one holder per Store.
func (s *Store) AcquireKTSequencer(ctx context.Context) (store.KTSequencer, error) {
	err := s.read(func() error {
		if !s.seqHeld.CompareAndSwap(false, true) {
			return store.ErrKTSequencerHeld
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sequencer{s: s}, nil
}

// Release implements store.KTSequencer.
func (q *sequencer) Release() {
	if q.released.CompareAndSwap(false, true) {
		q.s.seqHeld.Store(false)
	}
}

// CommitKTEpoch implements store.KTSequencer in one durable op of the
// writer.
func (q *sequencer) CommitKTEpoch(ctx context.Context, c store.KTCommit) error {
	if err := checkCommit(c); err != nil {
		return err
	}
	return q.s.write(ctx, true, func(t *wtx) error {
		if q.released.Load() {
			return store.ErrKTSequencerLost
		}
		var size int64
		if err := t.conn.QueryRowContext(t.ctx, "SELECT coalesce(max(epoch) + 1, 0) FROM kt_epochs").Scan(&size); err != nil {
			return dbError("commit epoch", err)
		}
		if uint64(size) != c.Epoch.Number {
			return fmt.Errorf("%w: epoch %d, the log has %d", store.ErrKTConflict, c.Epoch.Number, size)
		}
		if _, err := t.conn.ExecContext(t.ctx, "INSERT INTO kt_epochs (epoch, encoded, entry, checkpoint) VALUES (?, ?, ?, ?)",
			int64(c.Epoch.Number), blob(c.Epoch.Epoch), blob(c.Epoch.Entry), blob(c.Epoch.Checkpoint)); err != nil {
			return dbError("commit epoch", err)
		}
		// One prepared statement each for the deletions and the values:
		// an epoch holds thousands of them.
		del, err := t.conn.PrepareContext(t.ctx, "DELETE FROM kt_pending WHERE seq = ?")
		if err != nil {
			return dbError("commit epoch", err)
		}
		defer del.Close()
		for _, seq := range c.Consumed {
			res, err := del.ExecContext(t.ctx, int64(seq))
			if err != nil {
				return dbError("commit epoch", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return dbError("commit epoch", err)
			} else if n != 1 {
				return fmt.Errorf("%w: pending update %d is gone", store.ErrKTConflict, seq)
			}
		}
		ins, err := t.conn.PrepareContext(t.ctx, "INSERT INTO kt_values (username, version, epoch, opening, value) VALUES (?, ?, ?, ?, ?)")
		if err != nil {
			return dbError("commit epoch", err)
		}
		defer ins.Close()
		for _, v := range c.Values {
			// The primary key (username, version) refuses a version
			// sequenced already.
			if _, err := ins.ExecContext(t.ctx, v.Username, int64(v.Version), int64(v.Epoch), v.Opening[:], blob(v.Value)); err != nil {
				if isConstraint(err) {
					return fmt.Errorf("%w: %q version %d is sequenced already", store.ErrKTConflict, v.Username, v.Version)
				}
				return dbError("commit epoch", err)
			}
		}
		return nil
	})
}

// checkCommit refuses a malformed commit before it reaches the database.
func checkCommit(c store.KTCommit) error {
	if c.Epoch.Number > math.MaxInt64 {
		return fmt.Errorf("%w: epoch %d", store.ErrKTConflict, c.Epoch.Number)
	}
	for _, v := range c.Values {
		if v.Epoch != c.Epoch.Number || v.Version > store.MaxKTVersion || v.Username == "" {
			return fmt.Errorf("sqlite: commit epoch %d: value %q version %d of epoch %d", c.Epoch.Number, v.Username, v.Version, v.Epoch)
		}
	}
	return nil
}

// KTSize implements store.Transparency.
func (s *Store) KTSize(ctx context.Context) (uint64, error) {
	var n int64
	err := s.read(func() error {
		return dbError("read log size", s.rdb.QueryRowContext(ctx, "SELECT coalesce(max(epoch) + 1, 0) FROM kt_epochs").Scan(&n))
	})
	return uint64(n), err
}

// KTEpochs implements store.Transparency.
func (s *Store) KTEpochs(ctx context.Context, from uint64, limit int) ([]store.KTEpoch, error) {
	limit = min(max(limit, 0), maxKTFetch)
	if from > math.MaxInt64 {
		return nil, nil
	}
	var es []store.KTEpoch
	err := s.read(func() error {
		rows, err := s.rdb.QueryContext(ctx, "SELECT epoch, encoded, entry, checkpoint FROM kt_epochs WHERE epoch >= ? ORDER BY epoch LIMIT ?", int64(from), limit)
		if err != nil {
			return dbError("read epochs", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				e store.KTEpoch
				n int64
			)
			if err := rows.Scan(&n, &e.Epoch, &e.Entry, &e.Checkpoint); err != nil {
				return dbError("read epochs", err)
			}
			e.Number = uint64(n)
			es = append(es, e)
		}
		return dbError("read epochs", rows.Err())
	})
	return es, err
}

// KTGreatest implements store.Transparency.
func (s *Store) KTGreatest(ctx context.Context, username string, size uint64) (*store.KTValue, error) {
	vs, err := s.ktValues(ctx, `SELECT version, epoch, opening, value FROM kt_values
		WHERE username = ? AND epoch < ? ORDER BY version DESC LIMIT 1`, username, int64(min(size, math.MaxInt64)))
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, store.ErrNotFound
	}
	return &vs[0], nil
}

// KTValues implements store.Transparency.
func (s *Store) KTValues(ctx context.Context, username string, from, to uint32, size uint64) ([]store.KTValue, error) {
	return s.ktValues(ctx, `SELECT version, epoch, opening, value FROM kt_values
		WHERE username = ? AND version BETWEEN ? AND ? AND epoch < ? ORDER BY version`,
		username, int64(from), int64(to), int64(min(size, math.MaxInt64)))
}

func (s *Store) ktValues(ctx context.Context, q string, username string, args ...any) ([]store.KTValue, error) {
	var vs []store.KTValue
	err := s.read(func() error {
		rows, err := s.rdb.QueryContext(ctx, q, append([]any{username}, args...)...)
		if err != nil {
			return dbError("read transparency values", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				v          store.KTValue
				ver, epoch int64
				opening    []byte
			)
			if err := rows.Scan(&ver, &epoch, &opening, &v.Value); err != nil {
				return dbError("read transparency values", err)
			}
			if len(opening) != len(v.Opening) {
				return fmt.Errorf("sqlite: stored opening has %d bytes: %w", len(opening), ErrCorrupt)
			}
			copy(v.Opening[:], opening)
			v.Username, v.Version, v.Epoch = username, uint32(ver), uint64(epoch)
			vs = append(vs, v)
		}
		return dbError("read transparency values", rows.Err())
	})
	return vs, err
}

// AddKTCosignatures implements store.Transparency.
func (s *Store) AddKTCosignatures(ctx context.Context, size uint64, cs []store.Cosignature) error {
	if size < 1 || size > math.MaxInt64 {
		return fmt.Errorf("sqlite: cosignatures for a log of %d epochs", size)
	}
	return s.write(ctx, true, func(t *wtx) error {
		for _, c := range cs {
			if _, err := t.conn.ExecContext(t.ctx, `INSERT INTO kt_cosignatures (size, witness, line) VALUES (?, ?, ?)
				ON CONFLICT (size, witness) DO NOTHING`, int64(size), c.Witness, blob(c.Line)); err != nil {
				return dbError("store cosignatures", err)
			}
		}
		return nil
	})
}

// KTCosignatures implements store.Transparency.
func (s *Store) KTCosignatures(ctx context.Context, size uint64) ([]store.Cosignature, error) {
	var cs []store.Cosignature
	err := s.read(func() error {
		rows, err := s.rdb.QueryContext(ctx, "SELECT witness, line FROM kt_cosignatures WHERE size = ? ORDER BY witness", int64(min(size, math.MaxInt64)))
		if err != nil {
			return dbError("read cosignatures", err)
		}
		defer rows.Close()
		for rows.Next() {
			var c store.Cosignature
			if err := rows.Scan(&c.Witness, &c.Line); err != nil {
				return dbError("read cosignatures", err)
			}
			cs = append(cs, c)
		}
		return dbError("read cosignatures", rows.Err())
	})
	return cs, err
}
