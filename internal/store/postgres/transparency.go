package postgres

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/store"
)

// Key transparency on the tables of migrations/0004_transparency.sql.
//
// The sequencer role is a session-level advisory lock (ktSequencerLock)
// taken on a connection of its own, outside the pool; the sequencer's
// commits run on that same connection, so a commit can only succeed while
// its session — and so the lock — lives. If the session dies, PostgreSQL
// releases the lock and another node takes over; the dead sequencer's
// commit fails. Independently, a commit checks inside its transaction that
// the epoch extends the stored log (the epoch's primary key makes two
// commits of one epoch impossible), so even a misconfigured second
// sequencer cannot fork the stored log.

var _ store.Transparency = (*Store)(nil)

// ktSequencerLock is the key of the sequencer's advisory lock ("parley-kt").
const ktSequencerLock int64 = 0x7061726c65796b74

// maxKTFetch caps one PendingKT or KTEpochs call.
const maxKTFetch = 1 << 20

// queueKT queues the insertion of a published device list into the
// pending queue, in the batch of the transaction that publishes it.
func queueKT(q *pgx.Batch, username string, listVersion uint64, signed []byte) error {
	if listVersion < 1 || listVersion-1 > store.MaxKTVersion {
		return fmt.Errorf("%w: device-list version %d is beyond the transparency log's %d", store.ErrVersionConflict, listVersion, store.MaxKTVersion+1)
	}
	q.Queue("INSERT INTO kt_pending (username, version, value) VALUES ($1, $2, $3)", username, int64(listVersion-1), blob(signed))
	return nil
}

// ktHistory reports whether username has versions in the log or pending.
func ktHistory(ctx context.Context, tx pgx.Tx, username string) (bool, error) {
	var used bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kt_values WHERE username = $1)
		OR EXISTS (SELECT 1 FROM kt_pending WHERE username = $1)`, username).Scan(&used)
	return used, dbError("read transparency history", err)
}

// PendingKT implements store.Transparency.
func (s *Store) PendingKT(ctx context.Context, after uint64, limit int) ([]store.KTUpdate, error) {
	limit = min(max(limit, 0), maxKTFetch)
	if after >= math.MaxInt64 {
		return nil, nil
	}
	var us []store.KTUpdate
	err := s.use(ctx, func() error {
		rows, err := s.pool.Query(ctx, "SELECT seq, username, version, value FROM kt_pending WHERE seq > $1 ORDER BY seq LIMIT $2", int64(after), limit)
		if err != nil {
			return dbError("read pending transparency updates", err)
		}
		us, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.KTUpdate, error) {
			var (
				u        store.KTUpdate
				seq, ver int64
			)
			err := r.Scan(&seq, &u.Username, &ver, &u.Value)
			u.Seq, u.Version = uint64(seq), uint32(ver)
			return u, err
		})
		return dbError("read pending transparency updates", err)
	})
	return us, err
}

// PendingKTCount implements store.Transparency.
func (s *Store) PendingKTCount(ctx context.Context) (int, error) {
	var n int64
	err := s.use(ctx, func() error {
		return dbError("count pending transparency updates", s.pool.QueryRow(ctx, "SELECT count(*) FROM kt_pending").Scan(&n))
	})
	return int(n), err
}

// sequencer is the PostgreSQL engine's store.KTSequencer: a connection of
// its own holding the advisory lock.
type sequencer struct {
	mu   sync.Mutex // serializes commits on conn, and Release
	conn *pgx.Conn  // nil once released
}

// AcquireKTSequencer implements store.Transparency.
func (s *Store) AcquireKTSequencer(ctx context.Context) (store.KTSequencer, error) {
	var q *sequencer
	err := s.use(ctx, func() error {
		conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
		if err != nil {
			return dbError("connect the sequencer", err)
		}
		var got bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", ktSequencerLock).Scan(&got); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return dbError("take the sequencer lock", err)
		}
		if !got {
			conn.Close(context.WithoutCancel(ctx))
			return store.ErrKTSequencerHeld
		}
		q = &sequencer{conn: conn}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// Release implements store.KTSequencer: closing the session releases the
// lock.
func (q *sequencer) Release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
		defer cancel()
		// Unlock before closing: the server drops a closed session's locks
		// only when its backend notices the close, so another node (or a
		// test) trying right after Release could still find the lock held.
		// If the unlock fails, closing the session still releases it.
		_, _ = q.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", ktSequencerLock)
		q.conn.Close(ctx)
		q.conn = nil
	}
}

// CommitKTEpoch implements store.KTSequencer, in one durable transaction on
// the sequencer's own connection. It is not retried: a failure leaves the
// sequencer to re-read the log.
func (q *sequencer) CommitKTEpoch(ctx context.Context, c store.KTCommit) (err error) {
	if c.Epoch.Number > math.MaxInt64 {
		return fmt.Errorf("%w: epoch %d", store.ErrKTConflict, c.Epoch.Number)
	}
	for _, v := range c.Values {
		if v.Epoch != c.Epoch.Number || v.Version > store.MaxKTVersion || v.Username == "" {
			return fmt.Errorf("postgres: commit epoch %d: value %q version %d of epoch %d", c.Epoch.Number, v.Username, v.Version, v.Epoch)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.conn == nil || q.conn.IsClosed() {
		return store.ErrKTSequencerLost
	}
	tx, err := q.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", store.ErrKTSequencerLost, err)
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			_ = tx.Rollback(rctx)
		}
	}()
	var size int64
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(epoch) + 1, 0) FROM kt_epochs").Scan(&size); err != nil {
		return dbError("commit epoch", err)
	}
	if uint64(size) != c.Epoch.Number {
		return fmt.Errorf("%w: epoch %d, the log has %d", store.ErrKTConflict, c.Epoch.Number, size)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO kt_epochs (epoch, encoded, entry, checkpoint) VALUES ($1, $2, $3, $4)",
		int64(c.Epoch.Number), blob(c.Epoch.Epoch), blob(c.Epoch.Entry), blob(c.Epoch.Checkpoint)); err != nil {
		return ktConflict("commit epoch", err)
	}
	if len(c.Consumed) > 0 {
		seqs := make([]int64, len(c.Consumed))
		for i, s := range c.Consumed {
			seqs[i] = int64(min(s, math.MaxInt64))
		}
		tag, err := tx.Exec(ctx, "DELETE FROM kt_pending WHERE seq = ANY($1)", seqs)
		if err != nil {
			return dbError("commit epoch", err)
		}
		if tag.RowsAffected() != int64(len(seqs)) {
			return fmt.Errorf("%w: %d of %d consumed updates are no longer pending", store.ErrKTConflict, int64(len(seqs))-tag.RowsAffected(), len(seqs))
		}
	}
	if len(c.Values) > 0 {
		rows := make([][]any, len(c.Values))
		for i, v := range c.Values {
			rows[i] = []any{v.Username, int64(v.Version), int64(v.Epoch), v.Opening[:], blob(v.Value)}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"kt_values"}, []string{"username", "version", "epoch", "opening", "value"}, pgx.CopyFromRows(rows)); err != nil {
			return ktConflict("commit epoch", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError("commit epoch", err)
	}
	return nil
}

// ktConflict turns a primary-key violation into ErrKTConflict.
func ktConflict(what string, err error) error {
	if code, _ := pgCode(err); code == codeUniqueViolation {
		return fmt.Errorf("postgres: %s: %w: %w", what, store.ErrKTConflict, err)
	}
	return dbError(what, err)
}

// KTSize implements store.Transparency.
func (s *Store) KTSize(ctx context.Context) (uint64, error) {
	var n int64
	err := s.use(ctx, func() error {
		return dbError("read log size", s.pool.QueryRow(ctx, "SELECT coalesce(max(epoch) + 1, 0) FROM kt_epochs").Scan(&n))
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
	err := s.use(ctx, func() error {
		rows, err := s.pool.Query(ctx, "SELECT epoch, encoded, entry, checkpoint FROM kt_epochs WHERE epoch >= $1 ORDER BY epoch LIMIT $2", int64(from), limit)
		if err != nil {
			return dbError("read epochs", err)
		}
		es, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.KTEpoch, error) {
			var (
				e store.KTEpoch
				n int64
			)
			err := r.Scan(&n, &e.Epoch, &e.Entry, &e.Checkpoint)
			e.Number = uint64(n)
			return e, err
		})
		return dbError("read epochs", err)
	})
	return es, err
}

// KTGreatest implements store.Transparency.
func (s *Store) KTGreatest(ctx context.Context, username string, size uint64) (*store.KTValue, error) {
	vs, err := s.ktValues(ctx, `SELECT version, epoch, opening, value FROM kt_values
		WHERE username = $1 AND epoch < $2 ORDER BY version DESC LIMIT 1`, username, int64(min(size, math.MaxInt64)))
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("postgres: %q has no sequenced version: %w", username, store.ErrNotFound)
	}
	return &vs[0], nil
}

// KTValues implements store.Transparency.
func (s *Store) KTValues(ctx context.Context, username string, from, to uint32, size uint64) ([]store.KTValue, error) {
	return s.ktValues(ctx, `SELECT version, epoch, opening, value FROM kt_values
		WHERE username = $1 AND version BETWEEN $2 AND $3 AND epoch < $4 ORDER BY version`,
		username, int64(from), int64(to), int64(min(size, math.MaxInt64)))
}

func (s *Store) ktValues(ctx context.Context, q string, username string, args ...any) ([]store.KTValue, error) {
	var vs []store.KTValue
	err := s.use(ctx, func() error {
		rows, err := s.pool.Query(ctx, q, append([]any{username}, args...)...)
		if err != nil {
			return dbError("read transparency values", err)
		}
		vs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.KTValue, error) {
			var (
				v          store.KTValue
				ver, epoch int64
				opening    []byte
			)
			if err := r.Scan(&ver, &epoch, &opening, &v.Value); err != nil {
				return v, err
			}
			if len(opening) != len(v.Opening) {
				return v, fmt.Errorf("stored opening has %d bytes: %w", len(opening), ErrCorrupt)
			}
			copy(v.Opening[:], opening)
			v.Username, v.Version, v.Epoch = username, uint32(ver), uint64(epoch)
			return v, nil
		})
		return dbError("read transparency values", err)
	})
	return vs, err
}

// AddKTCosignatures implements store.Transparency.
func (s *Store) AddKTCosignatures(ctx context.Context, size uint64, cs []store.Cosignature) error {
	if size < 1 || size > math.MaxInt64 {
		return fmt.Errorf("postgres: cosignatures for a log of %d epochs", size)
	}
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "store cosignatures", true, func(tx pgx.Tx) error {
			var q pgx.Batch
			for _, c := range cs {
				q.Queue(`INSERT INTO kt_cosignatures (size, witness, line) VALUES ($1, $2, $3)
					ON CONFLICT (size, witness) DO NOTHING`, int64(size), c.Witness, blob(c.Line))
			}
			return dbError("store cosignatures", tx.SendBatch(ctx, &q).Close())
		})
	})
	return wrapStore("store cosignatures", err)
}

// KTCosignatures implements store.Transparency.
func (s *Store) KTCosignatures(ctx context.Context, size uint64) ([]store.Cosignature, error) {
	var cs []store.Cosignature
	err := s.use(ctx, func() error {
		rows, err := s.pool.Query(ctx, "SELECT witness, line FROM kt_cosignatures WHERE size = $1 ORDER BY witness COLLATE \"C\"", int64(min(size, math.MaxInt64)))
		if err != nil {
			return dbError("read cosignatures", err)
		}
		cs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Cosignature, error) {
			var c store.Cosignature
			err := r.Scan(&c.Witness, &c.Line)
			return c, err
		})
		return dbError("read cosignatures", err)
	})
	return cs, err
}
