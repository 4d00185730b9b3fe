package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/parleyim/parley/internal/store"
)

// CreateAccount implements store.Store. The checks run in the SQLite
// engine's order (username, devices, invite), so both report the same
// error for the same registration; a concurrent registration that wins a
// race after the checks is caught by the primary keys.
func (s *Store) CreateAccount(ctx context.Context, a store.NewAccount) error {
	name := a.Account.Username
	switch {
	case name == "":
		return errors.New("postgres: create account: empty username")
	case a.List.Version != 1:
		return fmt.Errorf("postgres: create account: first device list has version %d, want 1: %w", a.List.Version, store.ErrVersionConflict)
	case len(a.Devices) == 0:
		return errors.New("postgres: create account: no devices")
	}
	if err := checkDistinct(a.Devices); err != nil {
		return fmt.Errorf("postgres: create account: %w", err)
	}
	if err := checkPrekeysFor(a.Devices, a.Prekeys); err != nil {
		return fmt.Errorf("postgres: create account: %w", err)
	}
	devs := sortedDevices(a.Devices)
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "create account", true, func(tx pgx.Tx) error {
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM accounts WHERE username = $1)", name).Scan(&exists); err != nil {
				return dbError("create account", err)
			}
			if exists {
				return store.ErrAccountExists
			}
			if used, err := ktHistory(ctx, tx, name); err != nil {
				return err
			} else if used {
				return fmt.Errorf("%w: %w", store.ErrAccountExists, store.ErrUsernameInLog)
			}
			if taken, err := firstExisting(ctx, tx, devs); err != nil {
				return err
			} else if taken != nil {
				return fmt.Errorf("%w: %x", store.ErrDeviceExists, taken)
			}
			if a.InviteHash != nil {
				tag, err := tx.Exec(ctx, "DELETE FROM invites WHERE hash = $1 AND expires > $2", a.InviteHash, fromTime(time.Now()))
				if err != nil {
					return dbError("consume invite", err)
				}
				if tag.RowsAffected() != 1 {
					return store.ErrInviteInvalid
				}
			}
			var q pgx.Batch
			q.Queue("INSERT INTO accounts (username, account_key, created, list_version) VALUES ($1, $2, $3, 1)",
				name, blob(a.Account.AccountKey), fromTime(a.Account.Created))
			q.Queue("INSERT INTO device_lists (username, version, signed) VALUES ($1, 1, $2)", name, blob(a.List.Signed))
			if err := queueKT(&q, name, 1, a.List.Signed); err != nil {
				return err
			}
			queueInsertDevices(&q, name, devs)
			for _, d := range devs {
				if u, ok := a.Prekeys[d.ID]; ok {
					queueAddPrekeys(&q, d.ID, u)
				}
			}
			return uniqueError("create account", tx.SendBatch(ctx, &q).Close())
		})
	})
	return wrapStore("create account", err)
}

// uniqueError turns a primary-key violation of a racing registration or
// update into the store's error for it.
func uniqueError(what string, err error) error {
	switch code, constraint := pgCode(err); {
	case err == nil:
		return nil
	case code == codeUniqueViolation && constraint == "accounts_pkey":
		return store.ErrAccountExists
	case code == codeUniqueViolation && constraint == "kt_pending_username_version_key":
		// A racing registration of a username with history in the log.
		return fmt.Errorf("%w: %w", store.ErrAccountExists, store.ErrUsernameInLog)
	case code == codeUniqueViolation && constraint == "devices_pkey":
		return store.ErrDeviceExists
	default:
		return dbError(what, err)
	}
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

// sortedDevices returns ds in id order, the lock order (postgres.go).
func sortedDevices(ds []store.Device) []store.Device {
	ds = slices.Clone(ds)
	slices.SortFunc(ds, func(a, b store.Device) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return ds
}

func idsOf(ds []store.Device) [][]byte {
	ids := make([][]byte, len(ds))
	for i := range ds {
		ids[i] = ds[i].ID[:]
	}
	return ids
}

// firstExisting returns the lowest id of ds that is a registered device,
// or nil.
func firstExisting(ctx context.Context, tx pgx.Tx, ds []store.Device) ([]byte, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	var id []byte
	err := tx.QueryRow(ctx, "SELECT id FROM devices WHERE id = ANY($1) ORDER BY id LIMIT 1", idsOf(ds)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbError("look up devices", err)
	}
	return id, nil
}

func queueInsertDevices(q *pgx.Batch, username string, ds []store.Device) {
	if len(ds) == 0 {
		return
	}
	var (
		public      [][]byte
		added, seen []int64
	)
	for _, d := range ds {
		public = append(public, blob(d.Public))
		added = append(added, fromTime(d.Added))
		seen = append(seen, fromTime(d.LastSeen))
	}
	q.Queue(`INSERT INTO devices (id, username, public, added, last_seen)
		SELECT id, $2, public, added, last_seen FROM unnest($1::bytea[], $3::bytea[], $4::bigint[], $5::bigint[])
			AS d (id, public, added, last_seen)`,
		idsOf(ds), username, public, added, seen)
}

// Account implements store.Store.
func (s *Store) Account(ctx context.Context, username string) (*store.Account, error) {
	a := store.Account{Username: username}
	err := s.use(ctx, func() error {
		var created, version int64
		err := s.pool.QueryRow(ctx, "SELECT account_key, created, list_version FROM accounts WHERE username = $1", username).
			Scan(&a.AccountKey, &created, &version)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: account %q: %w", username, store.ErrNotFound)
		}
		if err != nil {
			return dbError("read account", err)
		}
		a.Created = toTime(created)
		a.ListVersion = uint64(version)
		return nil
	})
	if err != nil {
		return nil, wrapStore("read account", err)
	}
	return &a, nil
}

// DeleteAccount implements store.Store. Foreign keys cascade the delete to
// the account's lists, devices, prekeys and queues; the device rows are
// locked first, in id order, so the cascade cannot deadlock with a send.
// Deleting an unknown account is ErrNotFound.
func (s *Store) DeleteAccount(ctx context.Context, username string) error {
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "delete account", true, func(tx pgx.Tx) error {
			var q pgx.Batch
			q.Queue("SELECT 1 FROM accounts WHERE username = $1 FOR UPDATE", username)
			q.Queue("SELECT 1 FROM devices WHERE username = $1 ORDER BY id FOR UPDATE", username)
			q.Queue("DELETE FROM accounts WHERE username = $1", username)
			br := tx.SendBatch(ctx, &q)
			var tag pgconn.CommandTag
			err := func() (err error) {
				for range 3 {
					if tag, err = br.Exec(); err != nil {
						return dbError("delete account", err)
					}
				}
				return nil
			}()
			if err := closeBatch(br, err); err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("postgres: delete account %q: %w", username, store.ErrNotFound)
			}
			return nil
		})
	})
	return wrapStore("delete account", err)
}

// DeviceList implements store.Store.
func (s *Store) DeviceList(ctx context.Context, username string, version uint64) (*store.DeviceList, error) {
	l := store.DeviceList{Username: username}
	err := s.use(ctx, func() error {
		if version > math.MaxInt64 {
			return fmt.Errorf("postgres: device list %q version %d: %w", username, version, store.ErrNotFound)
		}
		var (
			v   int64
			err error
		)
		if version == 0 {
			err = s.pool.QueryRow(ctx, `SELECT l.version, l.signed FROM device_lists l
				JOIN accounts a ON a.username = l.username AND a.list_version = l.version
				WHERE l.username = $1`, username).Scan(&v, &l.Signed)
		} else {
			err = s.pool.QueryRow(ctx, "SELECT version, signed FROM device_lists WHERE username = $1 AND version = $2",
				username, int64(version)).Scan(&v, &l.Signed)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: device list %q version %d: %w", username, version, store.ErrNotFound)
		}
		if err != nil {
			return dbError("read device list", err)
		}
		l.Version = uint64(v)
		return nil
	})
	if err != nil {
		return nil, wrapStore("read device list", err)
	}
	return &l, nil
}

// UpdateDeviceList implements store.Store. The account row is locked
// first, so concurrent updates of one account run one after another and
// all but one find the version taken. Prekeys for a device not in the new
// list are refused with ErrNotFound; a new device whose id another account
// holds is ErrDeviceExists.
func (s *Store) UpdateDeviceList(ctx context.Context, u store.DeviceListUpdate) ([]store.DeviceID, error) {
	name := u.List.Username
	if u.List.Version > math.MaxInt64 || u.List.Version < 2 {
		return nil, fmt.Errorf("postgres: update device list: version %d: %w", u.List.Version, store.ErrVersionConflict)
	}
	if err := checkDistinct(u.Devices); err != nil {
		return nil, fmt.Errorf("postgres: update device list: %w", err)
	}
	if err := checkPrekeysFor(u.Devices, u.Prekeys); err != nil {
		return nil, fmt.Errorf("postgres: update device list: %w", err)
	}
	devs := sortedDevices(u.Devices)
	var removed []store.DeviceID
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "update device list", true, func(tx pgx.Tx) error {
			removed = nil // a retried transaction must not accumulate
			var current int64
			err := tx.QueryRow(ctx, "SELECT list_version FROM accounts WHERE username = $1 FOR NO KEY UPDATE", name).Scan(&current)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("postgres: update device list: account %q: %w", name, store.ErrNotFound)
			}
			if err != nil {
				return dbError("read list version", err)
			}
			if int64(u.List.Version) != current+1 {
				return fmt.Errorf("postgres: update device list: %w: current version %d, update to %d",
					store.ErrVersionConflict, current, u.List.Version)
			}
			// With the account row locked, no one else changes this
			// account's device set until we commit.
			rows, err := tx.Query(ctx, "SELECT id FROM devices WHERE username = $1 ORDER BY id", name)
			if err != nil {
				return dbError("list devices", err)
			}
			oldRaw, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
			if err != nil {
				return dbError("list devices", err)
			}
			old := make([]store.DeviceID, 0, len(oldRaw))
			for _, b := range oldRaw {
				id, err := deviceID(b)
				if err != nil {
					return err
				}
				old = append(old, id)
			}
			keep := make(map[store.DeviceID]bool, len(devs))
			for _, d := range devs {
				keep[d.ID] = true
			}
			var gone [][]byte
			for _, id := range old {
				if !keep[id] {
					removed = append(removed, id)
					gone = append(gone, id[:])
				}
			}
			var fresh []store.Device
			for _, d := range devs {
				if !slices.Contains(old, d.ID) {
					fresh = append(fresh, d) // a kept device keeps its row, queue and prekeys
				}
			}
			if taken, err := firstExisting(ctx, tx, fresh); err != nil {
				return err
			} else if taken != nil {
				return fmt.Errorf("postgres: update device list: %w: %x", store.ErrDeviceExists, taken)
			}
			var q pgx.Batch
			if len(gone) > 0 {
				// Lock in id order, then delete; the delete cascades to
				// the devices' queues and prekeys.
				q.Queue("SELECT 1 FROM devices WHERE id = ANY($1) ORDER BY id FOR UPDATE", gone)
				q.Queue("DELETE FROM devices WHERE id = ANY($1)", gone)
			}
			queueInsertDevices(&q, name, fresh)
			for _, d := range devs {
				if pk, ok := u.Prekeys[d.ID]; ok {
					queueAddPrekeys(&q, d.ID, pk)
				}
			}
			q.Queue("INSERT INTO device_lists (username, version, signed) VALUES ($1, $2, $3)",
				name, int64(u.List.Version), blob(u.List.Signed))
			if err := queueKT(&q, name, u.List.Version, u.List.Signed); err != nil {
				return err
			}
			q.Queue("UPDATE accounts SET list_version = $1 WHERE username = $2", int64(u.List.Version), name)
			return uniqueError("update device list", tx.SendBatch(ctx, &q).Close())
		})
	})
	if err != nil {
		return nil, wrapStore("update device list", err)
	}
	return removed, nil
}

// Devices implements store.Store. An unknown account is ErrNotFound; an
// account whose list has no devices has none.
// DeviceIDs implements store.Store in one statement (one snapshot).
func (s *Store) DeviceIDs(ctx context.Context, usernames ...string) ([][]store.DeviceID, error) {
	ids := make([][]store.DeviceID, len(usernames))
	err := s.use(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT username, id FROM devices WHERE username = ANY($1) ORDER BY username, id`, usernames)
		if err != nil {
			return dbError("list device ids", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				name string
				raw  []byte
			)
			if err := rows.Scan(&name, &raw); err != nil {
				return dbError("list device ids", err)
			}
			id, err := deviceID(raw)
			if err != nil {
				return err
			}
			for j, u := range usernames {
				if u == name {
					ids[j] = append(ids[j], id)
				}
			}
		}
		return dbError("list device ids", rows.Err())
	})
	if err != nil {
		return nil, wrapStore("list device ids", err)
	}
	for _, l := range ids {
		slices.SortFunc(l, func(a, b store.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	}
	return ids, nil
}

func (s *Store) Devices(ctx context.Context, username string) ([]store.Device, error) {
	var ds []store.Device
	err := s.use(ctx, func() error {
		// One statement, so the account and its devices come from one
		// snapshot: the LEFT JOIN gives one row of NULLs for an account
		// without devices and no row for an unknown account.
		rows, err := s.pool.Query(ctx, `SELECT d.id, d.public, d.added, d.last_seen FROM accounts a
			LEFT JOIN devices d ON d.username = a.username WHERE a.username = $1 ORDER BY d.id`, username)
		if err != nil {
			return dbError("list devices", err)
		}
		defer rows.Close()
		found := false
		for rows.Next() {
			found = true
			var (
				id, public  []byte
				added, seen *int64
			)
			if err := rows.Scan(&id, &public, &added, &seen); err != nil {
				return dbError("list devices", err)
			}
			if id == nil {
				continue
			}
			d := store.Device{Username: username, Public: public}
			if d.ID, err = deviceID(id); err != nil {
				return err
			}
			if added == nil || seen == nil {
				return fmt.Errorf("postgres: device %x has no times: %w", id, ErrCorrupt)
			}
			d.Added, d.LastSeen = toTime(*added), toTime(*seen)
			ds = append(ds, d)
		}
		if err := rows.Err(); err != nil {
			return dbError("list devices", err)
		}
		if !found {
			return fmt.Errorf("postgres: devices of %q: %w", username, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, wrapStore("list devices", err)
	}
	// PostgreSQL orders bytea bytewise, which is bytes.Compare; sort anyway
	// so the documented order does not rest on that.
	slices.SortFunc(ds, func(a, b store.Device) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return ds, nil
}

// Device implements store.Store.
func (s *Store) Device(ctx context.Context, id store.DeviceID) (*store.Device, error) {
	d := store.Device{ID: id}
	err := s.use(ctx, func() error {
		var added, seen int64
		err := s.pool.QueryRow(ctx, "SELECT username, public, added, last_seen FROM devices WHERE id = $1", id[:]).
			Scan(&d.Username, &d.Public, &added, &seen)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: device %x: %w", id[:], store.ErrNotFound)
		}
		if err != nil {
			return dbError("read device", err)
		}
		d.Added, d.LastSeen = toTime(added), toTime(seen)
		return nil
	})
	if err != nil {
		return nil, wrapStore("read device", err)
	}
	return &d, nil
}

// TouchDevice implements store.Store. It is not durable (tx.go): last-seen
// times are a hint, and a lost one costs nothing.
func (s *Store) TouchDevice(ctx context.Context, id store.DeviceID, at time.Time) error {
	err := s.use(ctx, func() error {
		return s.inTx(ctx, "touch device", false, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, "UPDATE devices SET last_seen = $1 WHERE id = $2", fromTime(at), id[:])
			if err != nil {
				return dbError("touch device", err)
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("postgres: touch device %x: %w", id[:], store.ErrNotFound)
			}
			return nil
		})
	})
	return wrapStore("touch device", err)
}

// Secret implements store.Store. gen runs in the caller, outside any
// transaction; when two first calls race, both generate, the first insert
// wins and both return its value.
func (s *Store) Secret(ctx context.Context, name string, gen func() []byte) ([]byte, error) {
	var v []byte
	err := s.use(ctx, func() error {
		err := s.pool.QueryRow(ctx, "SELECT value FROM secrets WHERE name = $1", name).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			v = nil
			return nil
		}
		return dbError("read secret", err)
	})
	if err != nil || v != nil {
		return v, wrapStore("read secret", err)
	}
	fresh := gen()
	if len(fresh) == 0 {
		return nil, fmt.Errorf("postgres: secret %q: generator returned nothing", name)
	}
	err = s.use(ctx, func() error {
		return s.inTx(ctx, "create secret", true, func(tx pgx.Tx) error {
			// A racing first call's insert makes ours wait, then do
			// nothing; the SELECT, a statement of its own, sees the
			// winner's value.
			if _, err := tx.Exec(ctx, "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, fresh); err != nil {
				return dbError("create secret", err)
			}
			return dbError("read secret", tx.QueryRow(ctx, "SELECT value FROM secrets WHERE name = $1", name).Scan(&v))
		})
	})
	if err != nil {
		return nil, wrapStore("create secret", err)
	}
	return v, nil
}

// CreateInvite implements store.Store. Creating an invite that exists
// already updates its expiry.
func (s *Store) CreateInvite(ctx context.Context, hash []byte, expires time.Time) error {
	if len(hash) == 0 {
		return errors.New("postgres: create invite: empty hash")
	}
	err := s.use(ctx, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO invites (hash, expires) VALUES ($1, $2)
			ON CONFLICT (hash) DO UPDATE SET expires = excluded.expires`, hash, fromTime(expires))
		return dbError("create invite", err)
	})
	return wrapStore("create invite", err)
}
