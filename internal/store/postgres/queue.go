package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/store"
)

// MaxFetch caps the limit of one Fetch, so a careless caller cannot make
// the store load a whole queue into memory.
const MaxFetch = 1000

// Fetch implements store.Store. limit is capped at MaxFetch; a limit <= 0
// fetches nothing. It takes no lock: Seqs of a device become visible in
// increasing order (batch.go), so a plain snapshot read is enough.
func (s *Store) Fetch(ctx context.Context, id store.DeviceID, after uint64, limit int) ([]store.Envelope, error) {
	var envs []store.Envelope
	err := s.use(ctx, func() error {
		if limit <= 0 || after >= math.MaxInt64 {
			return nil
		}
		limit = min(limit, MaxFetch)
		// An envelope expires when Expires is before now (as in Expire),
		// so one expiring exactly now is still delivered.
		rows, err := s.pool.Query(ctx, `SELECT seq, message_id, sender_username, sender_device, body, created, expires
			FROM envelopes WHERE device = $1 AND seq > $2 AND expires >= $3 ORDER BY seq LIMIT $4`,
			id[:], int64(after), fromTime(time.Now()), limit)
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
				return fmt.Errorf("postgres: fetch: stored envelope %d has malformed ids: %w", seq, ErrCorrupt)
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
// and visible (a Fetch after Ack does not see the envelopes) but commits
// with synchronous_commit off, without waiting for the WAL flush: a lost
// ack only causes a redelivery, which clients de-duplicate (tx.go).
func (s *Store) Ack(ctx context.Context, id store.DeviceID, seqs []uint64) error {
	return s.use(ctx, func() error {
		valid := make([]int64, 0, len(seqs))
		for _, seq := range seqs {
			if seq <= math.MaxInt64 { // larger ones name no envelope
				valid = append(valid, int64(seq))
			}
		}
		if len(valid) == 0 {
			return nil
		}
		return s.inTx(ctx, "ack", false, func(tx pgx.Tx) error {
			// The device row first (the lock order, postgres.go); then the
			// delete, whose own snapshot sees every envelope committed
			// before the lock was ours, and whose row count is exact.
			var q pgx.Batch
			q.Queue("SELECT 1 FROM devices WHERE id = $1 FOR NO KEY UPDATE", id[:])
			q.Queue(`WITH gone AS (DELETE FROM envelopes WHERE device = $1 AND seq = ANY($2) RETURNING 1)
				UPDATE devices SET queue_len = queue_len - (SELECT count(*) FROM gone) WHERE id = $1`, id[:], valid)
			return dbError("ack", tx.SendBatch(ctx, &q).Close())
		})
	})
}

// QueueLength implements store.Store. It counts expired envelopes that
// Expire has not deleted yet. An unknown device is ErrNotFound.
func (s *Store) QueueLength(ctx context.Context, id store.DeviceID) (int, error) {
	var n int64
	err := s.use(ctx, func() error {
		err := s.pool.QueryRow(ctx, "SELECT queue_len FROM devices WHERE id = $1", id[:]).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: queue length of device %x: %w", id[:], store.ErrNotFound)
		}
		return dbError("read queue length", err)
	})
	return int(n), err
}

// Expire implements store.Store. It deletes in chunks of expireChunk, each
// its own transaction, so that sends to the devices of a large purge wait
// for one chunk, not for all of it. Expiry is not durable (tx.go): an
// expiry lost in a crash is done again by the next call.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	total := 0
	err := s.use(ctx, func() error {
		for {
			var deleted, found int
			err := s.inTx(ctx, "expire", false, func(tx pgx.Tx) error {
				var err error
				deleted, found, err = expireChunkTx(ctx, tx, fromTime(now))
				return err
			})
			if err != nil {
				return err
			}
			total += deleted
			if found < expireChunk {
				return nil
			}
		}
	})
	return total, err
}

// expireChunkTx deletes up to expireChunk expired envelopes, keeping the
// lock order: it finds them, locks their devices in id order, then
// deletes them and fixes the devices' queue lengths. found is how many
// expired envelopes it saw before locking (fewer than expireChunk: that
// was the last chunk).
func expireChunkTx(ctx context.Context, tx pgx.Tx, before int64) (deleted, found int, err error) {
	rows, err := tx.Query(ctx, "SELECT device FROM envelopes WHERE expires < $1 LIMIT $2", before, expireChunk)
	if err != nil {
		return 0, 0, dbError("expire", err)
	}
	devs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return 0, 0, dbError("expire", err)
	}
	found = len(devs)
	if found == 0 {
		return 0, 0, nil
	}
	slices.SortFunc(devs, bytes.Compare)
	devs = slices.CompactFunc(devs, bytes.Equal)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", devs); err != nil {
		return 0, 0, dbError("expire: lock devices", err)
	}
	// Only the locked devices' envelopes: another device's could be in
	// the middle of an ack or a send that holds its row.
	rows, err = tx.Query(ctx, `DELETE FROM envelopes WHERE (device, seq) IN (
			SELECT device, seq FROM envelopes WHERE device = ANY($1) AND expires < $2 LIMIT $3)
		RETURNING device`, devs, before, expireChunk)
	if err != nil {
		return 0, 0, dbError("expire", err)
	}
	gone, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return 0, 0, dbError("expire", err)
	}
	counts := map[string]int64{}
	for _, d := range gone {
		counts[string(d)]++
	}
	var (
		ids [][]byte
		ns  []int64
	)
	for _, d := range slices.Sorted(maps.Keys(counts)) {
		ids = append(ids, []byte(d))
		ns = append(ns, counts[d])
	}
	if _, err := tx.Exec(ctx, `UPDATE devices AS d SET queue_len = d.queue_len - c.n
		FROM unnest($1::bytea[], $2::bigint[]) AS c (id, n) WHERE d.id = c.id`, ids, ns); err != nil {
		return 0, 0, dbError("expire: update queue lengths", err)
	}
	return len(gone), found, nil
}
