package clientdb

import (
	"context"
	"errors"
	"fmt"
)

const (
	tableSessions = "sessions"
	colIdent      = "ident"
	colRecord     = "record"
)

// The ident column seals remote device ID (16 bytes) || username, so that
// SessionsFor can name the devices it returns without device IDs in the
// clear: with them, anyone holding the file could ask the server whose
// devices they are.

func openSession(k *keys, deviceHash, nameHash, ident, record []byte) (remote [16]byte, username string, rec []byte, err error) {
	id, err := k.open(ident, tableSessions, colIdent, deviceHash, nameHash)
	if err != nil {
		return remote, "", nil, err
	}
	if len(id) < 16 {
		return remote, "", nil, fmt.Errorf("%w: sessions.ident too short", ErrCorrupt)
	}
	copy(remote[:], id)
	rec, err = k.open(record, tableSessions, colRecord, deviceHash, nameHash)
	if err != nil {
		return remote, "", nil, err
	}
	return remote, string(id[16:]), rec, nil
}

func getSession(ctx context.Context, q querier, k *keys, remote [16]byte) ([]byte, error) {
	h := k.device(remote)
	var nameHash, ident, record []byte
	err := q.QueryRowContext(ctx, "SELECT name_hash, ident, record FROM sessions WHERE device_hash = ?", h).Scan(&nameHash, &ident, &record)
	if err != nil {
		return nil, notFound("session", err)
	}
	id, _, rec, err := openSession(k, h, nameHash, ident, record)
	if err != nil {
		return nil, err
	}
	if id != remote {
		return nil, fmt.Errorf("%w: session device does not match its key", ErrCorrupt)
	}
	return rec, nil
}

func sessionsFor(ctx context.Context, q querier, k *keys, username string) (map[[16]byte][]byte, error) {
	nameHash := k.username(username)
	rows, err := q.QueryContext(ctx, "SELECT device_hash, ident, record FROM sessions WHERE name_hash = ?", nameHash)
	if err != nil {
		return nil, sqlError("read sessions", err)
	}
	defer rows.Close()
	out := map[[16]byte][]byte{}
	for rows.Next() {
		var h, ident, record []byte
		if err := rows.Scan(&h, &ident, &record); err != nil {
			return nil, sqlError("read sessions", err)
		}
		id, name, rec, err := openSession(k, h, nameHash, ident, record)
		if err != nil {
			return nil, err
		}
		if name != username {
			return nil, fmt.Errorf("%w: session user does not match its key", ErrCorrupt)
		}
		out[id] = rec
	}
	if err := rows.Err(); err != nil {
		return nil, sqlError("read sessions", err)
	}
	return out, nil
}

func putSession(ctx context.Context, q querier, k *keys, remote [16]byte, username string, record []byte) error {
	if username == "" {
		return errors.New("clientdb: session without a username")
	}
	h, nameHash := k.device(remote), k.username(username)
	ident := append(remote[:], username...)
	_, err := q.ExecContext(ctx, `INSERT INTO sessions (device_hash, name_hash, ident, record) VALUES (?, ?, ?, ?)
		ON CONFLICT (device_hash) DO UPDATE SET name_hash = excluded.name_hash, ident = excluded.ident, record = excluded.record`,
		h, nameHash,
		k.seal(ident, tableSessions, colIdent, h, nameHash),
		k.seal(record, tableSessions, colRecord, h, nameHash))
	if err != nil {
		return sqlError("store session", err)
	}
	return nil
}

func deleteSession(ctx context.Context, q querier, k *keys, remote [16]byte) error {
	if _, err := q.ExecContext(ctx, "DELETE FROM sessions WHERE device_hash = ?", k.device(remote)); err != nil {
		return sqlError("delete session", err)
	}
	return nil
}
