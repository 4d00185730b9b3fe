package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/parleyim/parley/internal/store"
)

// CreateAccount implements store.Store.
func (s *Store) CreateAccount(ctx context.Context, a store.NewAccount) error {
	name := a.Account.Username
	if name == "" {
		return errors.New("sqlite: create account: empty username")
	}
	if a.List.Version != 1 {
		return fmt.Errorf("sqlite: create account: first device list has version %d, want 1: %w", a.List.Version, store.ErrVersionConflict)
	}
	if len(a.Devices) == 0 {
		return errors.New("sqlite: create account: no devices")
	}
	if err := checkDistinct(a.Devices); err != nil {
		return fmt.Errorf("sqlite: create account: %w", err)
	}
	if err := checkPrekeysFor(a.Devices, a.Prekeys); err != nil {
		return fmt.Errorf("sqlite: create account: %w", err)
	}
	return s.write(ctx, true, func(t *wtx) error {
		var one int
		err := t.conn.QueryRowContext(t.ctx, "SELECT 1 FROM accounts WHERE username = ?", name).Scan(&one)
		switch {
		case err == nil:
			return store.ErrAccountExists
		case !errors.Is(err, sql.ErrNoRows):
			return dbError("create account", err)
		}
		if used, err := t.ktHistory(name); err != nil {
			return err
		} else if used {
			return fmt.Errorf("%w: %w", store.ErrAccountExists, store.ErrUsernameInLog)
		}
		for _, d := range a.Devices {
			if exists, err := t.deviceExists(d.ID); err != nil {
				return err
			} else if exists {
				return fmt.Errorf("%w: %x", store.ErrDeviceExists, d.ID[:])
			}
		}
		if a.InviteHash != nil {
			res, err := t.conn.ExecContext(t.ctx, "DELETE FROM invites WHERE hash = ? AND expires > ?",
				a.InviteHash, fromTime(time.Now()))
			if err != nil {
				return dbError("consume invite", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return dbError("consume invite", err)
			} else if n != 1 {
				return store.ErrInviteInvalid
			}
		}
		if _, err := t.conn.ExecContext(t.ctx,
			"INSERT INTO accounts (username, account_key, created, list_version) VALUES (?, ?, ?, 1)",
			name, blob(a.Account.AccountKey), fromTime(a.Account.Created)); err != nil {
			return dbError("insert account", err)
		}
		if _, err := t.conn.ExecContext(t.ctx,
			"INSERT INTO device_lists (username, version, signed) VALUES (?, 1, ?)",
			name, blob(a.List.Signed)); err != nil {
			return dbError("insert device list", err)
		}
		if err := t.queueKT(name, 1, a.List.Signed); err != nil {
			return err
		}
		for _, d := range a.Devices {
			if err := t.insertDevice(name, d); err != nil {
				return err
			}
			if u, ok := a.Prekeys[d.ID]; ok {
				if err := t.addPrekeys(d.ID, u); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// checkDistinct refuses a device set that names a device twice.
func checkDistinct(ds []store.Device) error {
	seen := make(map[store.DeviceID]bool, len(ds))
	for _, d := range ds {
		if seen[d.ID] {
			return fmt.Errorf("device %x listed twice", d.ID[:])
		}
		seen[d.ID] = true
	}
	return nil
}

// checkPrekeysFor refuses prekeys for devices that are not in ds: they
// would have no row to belong to.
func checkPrekeysFor(ds []store.Device, pk map[store.DeviceID]store.PrekeyUpload) error {
	for id := range pk {
		if !slices.ContainsFunc(ds, func(d store.Device) bool { return d.ID == id }) {
			return fmt.Errorf("prekeys for device %x, which is not in the list: %w", id[:], store.ErrNotFound)
		}
	}
	return nil
}

func (t *wtx) deviceExists(id store.DeviceID) (bool, error) {
	var one int
	err := t.conn.QueryRowContext(t.ctx, "SELECT 1 FROM devices WHERE id = ?", id[:]).Scan(&one)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	default:
		return false, dbError("look up device", err)
	}
}

func (t *wtx) insertDevice(username string, d store.Device) error {
	_, err := t.conn.ExecContext(t.ctx,
		"INSERT INTO devices (id, username, public, added, last_seen) VALUES (?, ?, ?, ?, ?)",
		d.ID[:], username, blob(d.Public), fromTime(d.Added), fromTime(d.LastSeen))
	return dbError("insert device", err)
}

// Account implements store.Store.
func (s *Store) Account(ctx context.Context, username string) (*store.Account, error) {
	var a store.Account
	err := s.read(func() error {
		var created, version int64
		err := s.rdb.QueryRowContext(ctx,
			"SELECT account_key, created, list_version FROM accounts WHERE username = ?", username).
			Scan(&a.AccountKey, &created, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("read account", err)
		}
		a.Username = username
		a.Created = toTime(created)
		a.ListVersion = uint64(version)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// DeleteAccount implements store.Store. Foreign keys cascade the delete to
// the account's lists, devices, prekeys and queues. Deleting an unknown
// account is ErrNotFound.
func (s *Store) DeleteAccount(ctx context.Context, username string) error {
	return s.write(ctx, true, func(t *wtx) error {
		res, err := t.conn.ExecContext(t.ctx, "DELETE FROM accounts WHERE username = ?", username)
		if err != nil {
			return dbError("delete account", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError("delete account", err)
		} else if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// DeviceList implements store.Store.
func (s *Store) DeviceList(ctx context.Context, username string, version uint64) (*store.DeviceList, error) {
	if version > math.MaxInt64 {
		return nil, store.ErrNotFound
	}
	l := store.DeviceList{Username: username}
	err := s.read(func() error {
		var v int64
		var err error
		if version == 0 {
			err = s.rdb.QueryRowContext(ctx, `SELECT l.version, l.signed FROM device_lists l
				JOIN accounts a ON a.username = l.username AND a.list_version = l.version
				WHERE l.username = ?`, username).Scan(&v, &l.Signed)
		} else {
			err = s.rdb.QueryRowContext(ctx,
				"SELECT version, signed FROM device_lists WHERE username = ? AND version = ?",
				username, int64(version)).Scan(&v, &l.Signed)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("read device list", err)
		}
		l.Version = uint64(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &l, nil
}

// UpdateDeviceList implements store.Store. Prekeys for a device not in the
// new list are refused with ErrNotFound; a new device whose id another
// account holds is ErrDeviceExists.
func (s *Store) UpdateDeviceList(ctx context.Context, u store.DeviceListUpdate) ([]store.DeviceID, error) {
	name := u.List.Username
	if u.List.Version > math.MaxInt64 || u.List.Version < 2 {
		return nil, fmt.Errorf("sqlite: update device list: version %d: %w", u.List.Version, store.ErrVersionConflict)
	}
	if err := checkDistinct(u.Devices); err != nil {
		return nil, fmt.Errorf("sqlite: update device list: %w", err)
	}
	if err := checkPrekeysFor(u.Devices, u.Prekeys); err != nil {
		return nil, fmt.Errorf("sqlite: update device list: %w", err)
	}
	var removed []store.DeviceID
	err := s.write(ctx, true, func(t *wtx) error {
		removed = nil // a retried closure must not accumulate
		var current int64
		err := t.st.listVersion.QueryRowContext(t.ctx, name).Scan(&current)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("read list version", err)
		}
		if int64(u.List.Version) != current+1 {
			return fmt.Errorf("%w: current version %d, update to %d", store.ErrVersionConflict, current, u.List.Version)
		}
		old, err := t.deviceIDs(name)
		if err != nil {
			return err
		}
		keep := make(map[store.DeviceID]bool, len(u.Devices))
		for _, d := range u.Devices {
			keep[d.ID] = true
		}
		for _, id := range old {
			if !keep[id] {
				// Cascades to the device's queue and prekeys.
				if _, err := t.conn.ExecContext(t.ctx, "DELETE FROM devices WHERE id = ?", id[:]); err != nil {
					return dbError("remove device", err)
				}
				removed = append(removed, id)
			}
		}
		for _, d := range u.Devices {
			if slices.Contains(old, d.ID) {
				continue // a kept device keeps its row, queue and prekeys
			}
			if exists, err := t.deviceExists(d.ID); err != nil {
				return err
			} else if exists {
				return fmt.Errorf("%w: %x", store.ErrDeviceExists, d.ID[:])
			}
			if err := t.insertDevice(name, d); err != nil {
				return err
			}
		}
		for _, d := range u.Devices {
			if pk, ok := u.Prekeys[d.ID]; ok {
				if err := t.addPrekeys(d.ID, pk); err != nil {
					return err
				}
			}
		}
		if _, err := t.st.insertList.ExecContext(t.ctx, name, int64(u.List.Version), blob(u.List.Signed)); err != nil {
			return dbError("insert device list", err)
		}
		if err := t.queueKT(name, u.List.Version, u.List.Signed); err != nil {
			return err
		}
		if _, err := t.st.setListVersion.ExecContext(t.ctx, int64(u.List.Version), name); err != nil {
			return dbError("update list version", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

func (t *wtx) deviceIDs(username string) ([]store.DeviceID, error) {
	rows, err := t.st.deviceIDs.QueryContext(t.ctx, username)
	if err != nil {
		return nil, dbError("list devices", err)
	}
	defer rows.Close()
	var ids []store.DeviceID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, dbError("list devices", err)
		}
		id, err := deviceID(b)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, dbError("list devices", rows.Err())
}

// deviceID converts a stored id, refusing one of the wrong length rather
// than truncating it.
func deviceID(b []byte) (store.DeviceID, error) {
	var id store.DeviceID
	if len(b) != len(id) {
		return id, fmt.Errorf("sqlite: stored device id has %d bytes, want %d: %w", len(b), len(id), ErrCorrupt)
	}
	copy(id[:], b)
	return id, nil
}

// Devices implements store.Store. An unknown account is ErrNotFound; an
// account whose list has no devices has none.
func (s *Store) Devices(ctx context.Context, username string) ([]store.Device, error) {
	var ds []store.Device
	err := s.read(func() error {
		rows, err := s.rdb.QueryContext(ctx, "SELECT id, public, added, last_seen FROM devices WHERE username = ? ORDER BY id", username)
		if err != nil {
			return dbError("list devices", err)
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDevice(rows, username)
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		if err := rows.Err(); err != nil {
			return dbError("list devices", err)
		}
		if len(ds) > 0 {
			return nil
		}
		var one int
		err = s.rdb.QueryRowContext(ctx, "SELECT 1 FROM accounts WHERE username = ?", username).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return dbError("read account", err)
	})
	if err != nil {
		return nil, err
	}
	// SQLite orders BLOBs with memcmp, which is bytes.Compare; sort anyway
	// so the documented order does not rest on that.
	slices.SortFunc(ds, func(a, b store.Device) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return ds, nil
}

// DeviceIDs implements store.Store, two accounts per query.
func (s *Store) DeviceIDs(ctx context.Context, usernames ...string) ([][]store.DeviceID, error) {
	ids := make([][]store.DeviceID, len(usernames))
	err := s.read(func() error {
		for i := 0; i < len(usernames); i += 2 {
			a, b := usernames[i], usernames[i]
			if i+1 < len(usernames) {
				b = usernames[i+1]
			}
			rows, err := s.rst.deviceIDs.QueryContext(ctx, a, b)
			if err != nil {
				return dbError("list device ids", err)
			}
			for rows.Next() {
				var (
					name string
					raw  []byte
				)
				if err := rows.Scan(&name, &raw); err != nil {
					rows.Close()
					return dbError("list device ids", err)
				}
				id, err := deviceID(raw)
				if err != nil {
					rows.Close()
					return err
				}
				for j := i; j < min(i+2, len(usernames)); j++ {
					if usernames[j] == name {
						ids[j] = append(ids[j], id)
					}
				}
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return dbError("list device ids", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, l := range ids {
		slices.SortFunc(l, func(a, b store.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	}
	return ids, nil
}

func scanDevice(r interface{ Scan(...any) error }, username string) (store.Device, error) {
	var (
		d           store.Device
		id          []byte
		added, seen int64
	)
	if err := r.Scan(&id, &d.Public, &added, &seen); err != nil {
		return d, dbError("read device", err)
	}
	var err error
	if d.ID, err = deviceID(id); err != nil {
		return d, err
	}
	d.Username = username
	d.Added = toTime(added)
	d.LastSeen = toTime(seen)
	return d, nil
}

// Device implements store.Store.
func (s *Store) Device(ctx context.Context, id store.DeviceID) (*store.Device, error) {
	var d store.Device
	err := s.read(func() error {
		var added, seen int64
		err := s.rst.device.QueryRowContext(ctx, id[:]).Scan(&d.Username, &d.Public, &added, &seen)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return dbError("read device", err)
		}
		d.ID = id
		d.Added = toTime(added)
		d.LastSeen = toTime(seen)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// TouchDevice implements store.Store. It is not durable: last-seen times
// are a hint, and a lost one costs nothing.
func (s *Store) TouchDevice(ctx context.Context, id store.DeviceID, at time.Time) error {
	return s.write(ctx, false, func(t *wtx) error {
		res, err := t.conn.ExecContext(t.ctx, "UPDATE devices SET last_seen = ? WHERE id = ?", fromTime(at), id[:])
		if err != nil {
			return dbError("touch device", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError("touch device", err)
		} else if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// Secret implements store.Store. gen runs in the caller, outside any
// transaction; when two first calls race, both generate, the first insert
// wins and both return its value.
func (s *Store) Secret(ctx context.Context, name string, gen func() []byte) ([]byte, error) {
	var v []byte
	err := s.read(func() error {
		err := s.rdb.QueryRowContext(ctx, "SELECT value FROM secrets WHERE name = ?", name).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			v = nil
			return nil
		}
		return dbError("read secret", err)
	})
	if err != nil || v != nil {
		return v, err
	}
	fresh := gen()
	if len(fresh) == 0 {
		return nil, fmt.Errorf("sqlite: secret %q: generator returned nothing", name)
	}
	err = s.write(ctx, true, func(t *wtx) error {
		if _, err := t.conn.ExecContext(t.ctx,
			"INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", name, fresh); err != nil {
			return dbError("create secret", err)
		}
		return dbError("read secret", t.conn.QueryRowContext(t.ctx, "SELECT value FROM secrets WHERE name = ?", name).Scan(&v))
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// CreateInvite implements store.Store. Creating an invite that exists
// already updates its expiry.
func (s *Store) CreateInvite(ctx context.Context, hash []byte, expires time.Time) error {
	if len(hash) == 0 {
		return errors.New("sqlite: create invite: empty hash")
	}
	return s.write(ctx, true, func(t *wtx) error {
		_, err := t.conn.ExecContext(t.ctx, `INSERT INTO invites (hash, expires) VALUES (?, ?)
			ON CONFLICT (hash) DO UPDATE SET expires = excluded.expires`, hash, fromTime(expires))
		return dbError("create invite", err)
	})
}
