package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/parleyim/parley/internal/store"
)

// MaxFetch caps the limit of one Fetch, so a careless caller cannot make
// the store load a whole queue into memory.
const MaxFetch = 1000

// Enqueue implements store.Store: the send is one op of a group commit
// (see writer.go), all-or-nothing inside its savepoint. MaxQueue <= 0
// means no limit.
//
// Prev comes from queue_lengths.last_seq, which the insert trigger sets to
// each new envelope's Seq (migrations/0005_queue_lengths.sql). The op
// reads it under the writer's transaction, after every earlier op of the
// batch (and every earlier batch) has run, and a rolled-back savepoint
// takes back its trigger's updates with its rows: so each op sees the
// last Seq stored for the device by whatever committed, or will commit,
// before it.
func (s *Store) Enqueue(ctx context.Context, send store.Send) error {
	envs := send.Envelopes
	if len(envs) == 0 {
		return nil
	}
	// The devices of the send, in first-seen order.
	devs := make([]store.DeviceID, 0, 4)
	for _, e := range envs {
		if !containsID(devs, e.Device) {
			devs = append(devs, e.Device)
		}
	}
	// The op reports Seq and Prev here, not into envs: it runs on the
	// writer goroutine, which may still be running it after a caller whose
	// context ended has returned, and a batch it ran in may yet be rolled
	// back. They reach envs only once the commit holding them is done.
	out := make([]seqPrev, len(envs))
	err := s.write(ctx, true, func(t *wtx) error {
		// The writer runs an op once; clearing keeps a second run (were
		// it ever to retry) from reporting the first one's Seqs.
		clear(out)
		// Per device of the send: its queue length and last Seq, read
		// before the send and advanced by each envelope it stores.
		qs := make([]struct{ n, last int64 }, len(devs))
		var unknown []store.DeviceID
		for i, d := range devs {
			err := t.st.queueLen.QueryRowContext(t.ctx, d[:]).Scan(&qs[i].n, &qs[i].last)
			if errors.Is(err, sql.ErrNoRows) {
				unknown = append(unknown, d)
				continue
			}
			if err != nil {
				return dbError("read queue length", err)
			}
		}
		if unknown != nil {
			return &store.UnknownDeviceError{Devices: unknown}
		}
		for k, e := range envs {
			res, err := t.st.insertEnvelope.ExecContext(t.ctx,
				e.Device[:], e.MessageID[:], e.SenderUsername, e.SenderDevice[:], blob(e.Body),
				fromTime(e.Created), fromTime(e.Expires))
			if err != nil {
				return dbError("insert envelope", err)
			}
			// A duplicate (device, message id) inserts nothing, does not
			// count against the queue and gets no Seq.
			n, err := res.RowsAffected()
			if err != nil {
				return dbError("insert envelope", err)
			}
			if n != 1 {
				continue
			}
			// seq is the rowid (INTEGER PRIMARY KEY), which is what
			// LastInsertId reports for the row just inserted.
			seq, err := res.LastInsertId()
			if err != nil {
				return dbError("insert envelope", err)
			}
			q := &qs[indexID(devs, e.Device)]
			out[k] = seqPrev{seq: uint64(seq), prev: uint64(q.last)}
			q.last = seq
			if send.MaxQueue > 0 {
				q.n++
				if q.n > int64(send.MaxQueue) {
					return &store.QueueFullError{Device: e.Device, Limit: send.MaxQueue}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for k := range envs {
		envs[k].Seq, envs[k].Prev = out[k].seq, out[k].prev
	}
	return nil
}

// seqPrev is what Enqueue reports for one envelope: zero for one it did
// not store.
type seqPrev struct{ seq, prev uint64 }

func containsID(ids []store.DeviceID, id store.DeviceID) bool { return indexID(ids, id) >= 0 }

func indexID(ids []store.DeviceID, id store.DeviceID) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}

// Fetch implements store.Store. limit is capped at MaxFetch; a limit <= 0
// fetches nothing.
func (s *Store) Fetch(ctx context.Context, id store.DeviceID, after uint64, limit int) ([]store.Envelope, error) {
	if limit <= 0 || after >= math.MaxInt64 {
		return nil, s.read(func() error { return nil })
	}
	limit = min(limit, MaxFetch)
	// A Fetch reads at most MaxFetch rows of a local file: ctx is checked
	// before it starts, not watched while it runs. Given a context that
	// can end, the driver would start a goroutine per query to watch it
	// (and wake it again when the query ends), which on the delivery path
	// cost more than the read.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	qctx := context.WithoutCancel(ctx)
	var envs []store.Envelope
	err := s.read(func() error {
		// An envelope expires when Expires is before now (as in Expire),
		// so one expiring exactly now is still delivered.
		rows, err := s.rst.fetch.QueryContext(qctx, id[:], int64(after), fromTime(time.Now()), limit)
		if err != nil {
			return dbError("fetch", err)
		}
		defer rows.Close()
		for rows.Next() {
			e := store.Envelope{Device: id}
			var (
				seq, created, expires int64
				msg, sender           []byte
			)
			if err := rows.Scan(&seq, &msg, &e.SenderUsername, &sender, &e.Body, &created, &expires); err != nil {
				return dbError("fetch", err)
			}
			if len(msg) != len(e.MessageID) || len(sender) != len(e.SenderDevice) {
				return fmt.Errorf("sqlite: fetch: stored envelope %d has malformed ids: %w", seq, ErrCorrupt)
			}
			copy(e.MessageID[:], msg)
			copy(e.SenderDevice[:], sender)
			e.Seq = uint64(seq)
			e.Created = toTime(created)
			e.Expires = toTime(expires)
			envs = append(envs, e)
		}
		return dbError("fetch", rows.Err())
	})
	if err != nil {
		return nil, err
	}
	return envs, nil
}

// Ack implements store.Store. It returns once the deletion is committed
// and visible (a Fetch after Ack does not see the envelopes) but does not
// wait for it to reach the disk; see writer.go.
func (s *Store) Ack(ctx context.Context, id store.DeviceID, seqs []uint64) error {
	if len(seqs) == 0 {
		return s.read(func() error { return nil })
	}
	return s.write(ctx, false, func(t *wtx) error {
		for _, seq := range seqs {
			if seq > math.MaxInt64 {
				continue // no such envelope
			}
			if _, err := t.st.ack.ExecContext(t.ctx, id[:], int64(seq)); err != nil {
				return dbError("ack", err)
			}
		}
		return nil
	})
}

// QueueLength implements store.Store. It counts expired envelopes that
// Expire has not deleted yet. An unknown device is ErrNotFound.
func (s *Store) QueueLength(ctx context.Context, id store.DeviceID) (int, error) {
	var n int
	err := s.read(func() error {
		err := s.rdb.QueryRowContext(ctx, "SELECT n FROM queue_lengths WHERE device = ?", id[:]).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return dbError("read queue length", err)
	})
	return n, err
}

// Expire implements store.Store. It deletes in chunks of expireChunk, each
// its own write, so that sends queued behind a large purge wait for one
// chunk, not for all of it. Expiry is not durable: an expiry lost in a
// crash is done again by the next call.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := s.write(ctx, false, func(t *wtx) error {
			res, err := t.conn.ExecContext(t.ctx, `DELETE FROM envelopes WHERE seq IN (
				SELECT seq FROM envelopes WHERE expires < ? LIMIT ?)`, fromTime(now), expireChunk)
			if err != nil {
				return dbError("expire", err)
			}
			n, err = res.RowsAffected()
			return dbError("expire", err)
		})
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < expireChunk {
			return total, nil
		}
	}
}
