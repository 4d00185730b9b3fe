package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/store"
)

// Prekey kinds, as stored in prekeys.kind (the SQLite engine's numbers).
const (
	kindSigned     = 0
	kindLastResort = 1
	kindOneTime    = 2 // X25519
	kindPQ         = 3 // one-time ML-KEM
)

// AddPrekeys implements store.Store.
func (s *Store) AddPrekeys(ctx context.Context, id store.DeviceID, u store.PrekeyUpload) error {
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "add prekeys", true, func(tx pgx.Tx) error {
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1)", id[:]).Scan(&exists); err != nil {
				return dbError("look up device", err)
			}
			if !exists {
				return fmt.Errorf("postgres: add prekeys: device %x: %w", id[:], store.ErrNotFound)
			}
			var q pgx.Batch
			queueAddPrekeys(&q, id, u)
			err := tx.SendBatch(ctx, &q).Close()
			// The device was removed after the check: its row is gone.
			if code, _ := pgCode(err); code == codeForeignKeyViolation {
				return fmt.Errorf("postgres: add prekeys: device %x: %w", id[:], store.ErrNotFound)
			}
			return dbError("add prekeys", err)
		})
	})
	return wrapStore("add prekeys", err)
}

// queueAddPrekeys queues the statements that store an upload for id.
func queueAddPrekeys(q *pgx.Batch, id store.DeviceID, u store.PrekeyUpload) {
	for _, r := range []struct {
		kind int16
		pk   *store.Prekey
	}{{kindSigned, u.Signed}, {kindLastResort, u.LastResort}} {
		if r.pk == nil {
			continue
		}
		// In place (prekeys_current allows one row per kind): a claim
		// waiting on the old row's lock then reads the new key.
		q.Queue(`INSERT INTO prekeys (device, kind, id, body) VALUES ($1, $2, $3, $4)
			ON CONFLICT (device, kind) WHERE kind IN (0, 1) DO UPDATE SET id = excluded.id, body = excluded.body`,
			id[:], r.kind, int64(r.pk.ID), blob(r.pk.Body))
	}
	var (
		kinds  []int16
		ids    []int64
		bodies [][]byte
	)
	for _, r := range []struct {
		kind int16
		pks  []store.Prekey
	}{{kindOneTime, u.OneTime}, {kindPQ, u.PQ}} {
		for _, pk := range r.pks {
			kinds = append(kinds, r.kind)
			ids = append(ids, int64(pk.ID))
			bodies = append(bodies, blob(pk.Body))
		}
	}
	if len(kinds) == 0 {
		return
	}
	// An id already held keeps its first body: the upload is a retry, and
	// the device may already have handed it out.
	q.Queue(`INSERT INTO prekeys (device, kind, id, body)
		SELECT $1, kind, id, body FROM unnest($2::smallint[], $3::bigint[], $4::bytea[]) AS p (kind, id, body)
		ON CONFLICT (device, kind, id) DO NOTHING`, id[:], kinds, ids, bodies)
}

// ClaimBundle implements store.Store. One-time prekeys are handed out
// lowest id first. Claims of one device run one after another: each first
// locks the device's signed and last-resort rows (which every claim needs
// anyway), so no two claims can pick the same lowest one-time key, on
// this node or another. Sends do not take these locks, so claims and
// sends to a device do not wait on each other. It is durable, so a crash
// cannot hand a claimed key out again.
func (s *Store) ClaimBundle(ctx context.Context, id store.DeviceID) (*store.Bundle, error) {
	var b store.Bundle
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "claim bundle", true, func(tx pgx.Tx) error {
			b = store.Bundle{}
			rows, err := tx.Query(ctx, `SELECT kind, id, body FROM prekeys WHERE device = $1 AND kind IN (0, 1)
				ORDER BY kind FOR UPDATE`, id[:])
			if err != nil {
				return dbError("read prekeys", err)
			}
			var (
				lastResort         store.Prekey
				signed, haveResort bool
			)
			for rows.Next() {
				var (
					kind int16
					pid  int64
					body []byte
				)
				if err := rows.Scan(&kind, &pid, &body); err != nil {
					rows.Close()
					return dbError("read prekeys", err)
				}
				switch kind {
				case kindSigned:
					b.Signed, signed = store.Prekey{ID: uint32(pid), Body: body}, true
				case kindLastResort:
					lastResort, haveResort = store.Prekey{ID: uint32(pid), Body: body}, true
				}
			}
			if err := rows.Err(); err != nil {
				return dbError("read prekeys", err)
			}
			if !signed || !haveResort {
				return fmt.Errorf("postgres: claim bundle of device %x: no signed or last-resort prekey: %w", id[:], store.ErrNotFound)
			}
			// Each statement of the batch sees the ones before it.
			var q pgx.Batch
			for _, kind := range []int16{kindOneTime, kindPQ} {
				q.Queue(`DELETE FROM prekeys WHERE device = $1 AND kind = $2 AND id = (
						SELECT min(id) FROM prekeys WHERE device = $1 AND kind = $2)
					RETURNING id, body`, id[:], kind)
			}
			q.Queue("SELECT count(*) FILTER (WHERE kind = 2), count(*) FILTER (WHERE kind = 3) FROM prekeys WHERE device = $1", id[:])
			br := tx.SendBatch(ctx, &q)
			var taken [2]*store.Prekey
			err = func() error {
				for i := range taken {
					var (
						pid  int64
						body []byte
					)
					err := br.QueryRow().Scan(&pid, &body)
					if errors.Is(err, pgx.ErrNoRows) {
						continue
					}
					if err != nil {
						return dbError("claim prekey", err)
					}
					taken[i] = &store.Prekey{ID: uint32(pid), Body: body}
				}
				return dbError("count prekeys", br.QueryRow().Scan(&b.OneTimeLeft, &b.PQLeft))
			}()
			if err := closeBatch(br, err); err != nil {
				return err
			}
			b.OneTime = taken[0]
			if taken[1] != nil {
				b.PQ = *taken[1]
			} else {
				b.PQ, b.PQLastResort = lastResort, true
			}
			return nil
		})
	})
	if err != nil {
		return nil, wrapStore("claim bundle", err)
	}
	return &b, nil
}

// PrekeyCounts implements store.Store. An unknown device is ErrNotFound.
func (s *Store) PrekeyCounts(ctx context.Context, id store.DeviceID) (oneTime, pq int, err error) {
	err = s.use(ctx, func() error {
		var exists bool
		err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1),
			(SELECT count(*) FROM prekeys WHERE device = $1 AND kind = 2),
			(SELECT count(*) FROM prekeys WHERE device = $1 AND kind = 3)`, id[:]).Scan(&exists, &oneTime, &pq)
		if err != nil {
			return dbError("count prekeys", err)
		}
		if !exists {
			return fmt.Errorf("postgres: prekey counts of device %x: %w", id[:], store.ErrNotFound)
		}
		return nil
	})
	return oneTime, pq, wrapStore("count prekeys", err)
}
