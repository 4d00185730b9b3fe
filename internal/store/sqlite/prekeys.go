package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/parleyim/parley/internal/store"
)

// Prekey kinds, as stored in prekeys.kind.
const (
	kindSigned     = 0
	kindLastResort = 1
	kindOneTime    = 2 // X25519
	kindPQ         = 3 // one-time ML-KEM
)

// AddPrekeys implements store.Store.
func (s *Store) AddPrekeys(ctx context.Context, id store.DeviceID, u store.PrekeyUpload) error {
	return s.write(ctx, true, func(t *wtx) error {
		if exists, err := t.deviceExists(id); err != nil {
			return err
		} else if !exists {
			return store.ErrNotFound
		}
		return t.addPrekeys(id, u)
	})
}

func (t *wtx) addPrekeys(id store.DeviceID, u store.PrekeyUpload) error {
	for _, r := range []struct {
		kind int
		pk   *store.Prekey
	}{{kindSigned, u.Signed}, {kindLastResort, u.LastResort}} {
		if r.pk == nil {
			continue
		}
		if _, err := t.conn.ExecContext(t.ctx, "DELETE FROM prekeys WHERE device = ? AND kind = ?", id[:], r.kind); err != nil {
			return dbError("replace prekey", err)
		}
		if _, err := t.conn.ExecContext(t.ctx, "INSERT INTO prekeys (device, kind, id, body) VALUES (?, ?, ?, ?)",
			id[:], r.kind, int64(r.pk.ID), blob(r.pk.Body)); err != nil {
			return dbError("replace prekey", err)
		}
	}
	for _, r := range []struct {
		kind int
		pks  []store.Prekey
	}{{kindOneTime, u.OneTime}, {kindPQ, u.PQ}} {
		for _, pk := range r.pks {
			// An id already held keeps its first body: the upload is a
			// retry, and the device may already have handed it out.
			if _, err := t.conn.ExecContext(t.ctx, `INSERT INTO prekeys (device, kind, id, body) VALUES (?, ?, ?, ?)
				ON CONFLICT (device, kind, id) DO NOTHING`, id[:], r.kind, int64(pk.ID), blob(pk.Body)); err != nil {
				return dbError("add prekey", err)
			}
		}
	}
	return nil
}

// ClaimBundle implements store.Store. One-time prekeys are handed out
// lowest id first. It needs no locking of its own: it runs on the single
// writer, so two claims never interleave, and it is durable, so a crash
// cannot hand a claimed key out again.
func (s *Store) ClaimBundle(ctx context.Context, id store.DeviceID) (*store.Bundle, error) {
	var b store.Bundle
	err := s.write(ctx, true, func(t *wtx) error {
		b = store.Bundle{}
		var lastResort store.Prekey
		for _, r := range []struct {
			kind int
			pk   *store.Prekey
		}{{kindSigned, &b.Signed}, {kindLastResort, &lastResort}} {
			var pid int64
			err := t.conn.QueryRowContext(t.ctx, "SELECT id, body FROM prekeys WHERE device = ? AND kind = ?", id[:], r.kind).
				Scan(&pid, &r.pk.Body)
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNotFound
			}
			if err != nil {
				return dbError("read prekey", err)
			}
			r.pk.ID = uint32(pid)
		}
		oneTime, err := t.takeOneTime(id, kindOneTime)
		if err != nil {
			return err
		}
		b.OneTime = oneTime
		pq, err := t.takeOneTime(id, kindPQ)
		if err != nil {
			return err
		}
		if pq != nil {
			b.PQ = *pq
		} else {
			b.PQ, b.PQLastResort = lastResort, true
		}
		b.OneTimeLeft, b.PQLeft, err = prekeyCounts(t.ctx, t.conn, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// takeOneTime deletes and returns the lowest-id one-time prekey of kind,
// or nil if none is left. It is one statement, so even without the single
// writer no two callers could take the same row.
func (t *wtx) takeOneTime(id store.DeviceID, kind int) (*store.Prekey, error) {
	var (
		pid  int64
		body []byte
	)
	err := t.conn.QueryRowContext(t.ctx, `DELETE FROM prekeys WHERE rowid = (
			SELECT rowid FROM prekeys WHERE device = ? AND kind = ? ORDER BY id LIMIT 1)
		RETURNING id, body`, id[:], kind).Scan(&pid, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbError("claim prekey", err)
	}
	return &store.Prekey{ID: uint32(pid), Body: body}, nil
}

// PrekeyCounts implements store.Store. An unknown device is ErrNotFound.
func (s *Store) PrekeyCounts(ctx context.Context, id store.DeviceID) (oneTime, pq int, err error) {
	err = s.read(func() error {
		var one int
		err := s.rdb.QueryRowContext(ctx, "SELECT 1 FROM devices WHERE id = ?", id[:]).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("look up device", err)
		}
		oneTime, pq, err = prekeyCounts(ctx, s.rdb, id)
		return err
	})
	return oneTime, pq, err
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func prekeyCounts(ctx context.Context, q queryer, id store.DeviceID) (oneTime, pq int, err error) {
	rows, err := q.QueryContext(ctx, "SELECT kind, count(*) FROM prekeys WHERE device = ? AND kind IN (?, ?) GROUP BY kind",
		id[:], kindOneTime, kindPQ)
	if err != nil {
		return 0, 0, dbError("count prekeys", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, n int
		if err := rows.Scan(&kind, &n); err != nil {
			return 0, 0, dbError("count prekeys", err)
		}
		switch kind {
		case kindOneTime:
			oneTime = n
		case kindPQ:
			pq = n
		}
	}
	return oneTime, pq, dbError("count prekeys", rows.Err())
}
