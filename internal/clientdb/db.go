package clientdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"sync/atomic"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parleyim/parley/internal/primitives"
)

// applicationID marks a SQLite file as a Parley client store ("PlyC" in
// the database header, https://www.sqlite.org/fileformat.html#application_id),
// so Open refuses any other SQLite file before reading a byte of it as ours.
const applicationID = 0x506c7943

// busyTimeoutMs bounds how long a connection waits for a lock another
// connection holds: a writer waits for the previous Update to commit.
const busyTimeoutMs = 10000

// Options configures Create.
type Options struct {
	// Insecure stores the storage key in the clear, so that anyone who
	// copies the file can read everything in it. Only for a user who
	// explicitly declined a passphrase; DB.Insecure reports it so the UI
	// can keep warning.
	Insecure bool
}

// DB is an open client store. Its methods are safe for concurrent use.
//
// Lock order: mu (read-locked by every method for its whole run,
// write-locked by Close) is taken before any SQLite lock; passMu
// serializes ChangePassphrase and is taken before mu.
type DB struct {
	path string
	sql  *sql.DB

	mu     sync.RWMutex
	closed bool
	keys   *keys

	passMu   sync.Mutex
	insecure atomic.Bool
}

// dsn builds the URI filename for modernc.org/sqlite. The path is escaped
// so that a '?' or '#' in it is not read as the start of parameters.
//
// mode=rw: Open never creates a file; Create makes it itself, with mode
// 0600 and O_EXCL. _txlock=immediate: Update takes the write lock at BEGIN,
// so two concurrent Updates queue on busy_timeout instead of failing with
// SQLITE_BUSY when a read lock cannot be upgraded (read-only transactions
// stay deferred). The pragmas:
//   - synchronous FULL: a commit is on disk before Update returns, since
//     the SDK acks the relay right after, and an acked message must survive
//     power loss;
//   - secure_delete: a deleted or overwritten cell (an old wrapped key, a
//     deleted session) is zeroed instead of lingering in free pages;
//   - trusted_schema off, cell_size_check on: the file may have been
//     written by an attacker, so SQLite must not run functions named in its
//     schema and must check page structure as it reads.
func dsn(path string) string {
	u := url.URL{Path: path}
	return "file:" + u.EscapedPath() + "?mode=rw&_txlock=immediate" +
		fmt.Sprintf("&_pragma=busy_timeout(%d)", busyTimeoutMs) +
		"&_pragma=synchronous(FULL)&_pragma=secure_delete(1)" +
		"&_pragma=trusted_schema(0)&_pragma=cell_size_check(1)"
}

// sqlError maps SQLite's "not a database" and corruption errors to ours.
func sqlError(what string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("%w: %s: %v", ErrNotDatabase, what, err)
		case sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
		}
	}
	return fmt.Errorf("clientdb: %s: %w", what, err)
}

func openSQL(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("clientdb: open %s: %w", path, err)
	}
	return db, nil
}

// removeFiles deletes a half-created store and its SQLite side files.
func removeFiles(path string) {
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		_ = os.Remove(p)
	}
}

// Create makes a new store at path. It fails with ErrExists if anything is
// there already, so it never overwrites a store. The passphrase must be
// non-empty unless opts.Insecure is set, in which case it must be empty (a
// passphrase that protects nothing would mislead).
func Create(path string, passphrase []byte, opts Options) (_ *DB, err error) {
	if opts.Insecure && len(passphrase) != 0 {
		return nil, errors.New("clientdb: a passphrase was given for an insecure store")
	}
	if !opts.Insecure && len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}

	// The storage key is random and never changes: a new passphrase only
	// rewraps it, so changing the passphrase does not re-encrypt the store.
	var storageKey [StorageKeySize]byte
	primitives.Random(storageKey[:])
	defer clear(storageKey[:])
	var wrapped []byte
	if opts.Insecure {
		wrapped = WrapKeyInsecure(&storageKey)
	} else if wrapped, err = WrapKey(&storageKey, passphrase, kdfParams); err != nil {
		return nil, err
	}

	// O_EXCL makes "fails if the file exists" atomic, and 0600 keeps other
	// local users out (SQLite gives the -wal and -shm files the same mode).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s (%w)", ErrExists, path, fs.ErrExist)
	}
	if err != nil {
		return nil, fmt.Errorf("clientdb: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("clientdb: %w", err)
	}
	sdb, err := openSQL(path)
	if err != nil {
		removeFiles(path)
		return nil, err
	}
	defer func() {
		if err != nil {
			sdb.Close()
			removeFiles(path)
		}
	}()

	ctx := context.Background()
	// WAL: readers (history, contacts) never wait for the writer.
	var mode string
	if err := sdb.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return nil, sqlError("set WAL mode", err)
	}
	if mode != "wal" {
		return nil, fmt.Errorf("clientdb: cannot enable WAL mode (journal mode is %q)", mode)
	}
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	// One transaction: a crash leaves an empty file, which Open refuses,
	// never a store without its key.
	tx, err := sdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, sqlError("begin", err)
	}
	defer tx.Rollback()
	for _, q := range []string{
		fmt.Sprintf("PRAGMA application_id = %d", applicationID),
		"CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT",
		"INSERT INTO schema_version (version) VALUES (0)",
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return nil, sqlError("create schema", err)
		}
	}
	if err := applyMigrations(ctx, tx, ms, 0); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO keyring (id, wrapped) VALUES (1, ?)", wrapped); err != nil {
		return nil, sqlError("store wrapped key", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, sqlError("commit", err)
	}
	db := &DB{path: path, sql: sdb, keys: deriveKeys(&storageKey)}
	db.insecure.Store(opts.Insecure)
	return db, nil
}

// Open opens the store at path with its passphrase (ignored by an insecure
// store). A wrong passphrase is ErrWrongPassphrase; a file that is not a
// store, ErrNotDatabase; a store written by newer code, ErrSchemaTooNew.
// Open brings an older schema up to date, and rewraps a key found under a
// lower Argon2id cost than DefaultArgon2Params.
func Open(path string, passphrase []byte) (_ *DB, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("clientdb: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("clientdb: %s is a directory", path)
	}
	sdb, err := openSQL(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sdb.Close()
		}
	}()
	ctx := context.Background()

	var appID int64
	if err := sdb.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return nil, sqlError("read header", err)
	}
	if appID != applicationID {
		return nil, fmt.Errorf("%w: %s", ErrNotDatabase, path)
	}
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	version, err := schemaVersion(ctx, sdb)
	if err != nil {
		return nil, err
	}
	if version > len(ms) {
		return nil, fmt.Errorf("%w: %s has version %d, this program knows %d", ErrSchemaTooNew, path, version, len(ms))
	}

	// Unlock before migrating: a wrong passphrase must not change the file.
	var raw []byte
	if err := sdb.QueryRowContext(ctx, "SELECT wrapped FROM keyring WHERE id = 1").Scan(&raw); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: no wrapped key", ErrCorrupt)
		}
		return nil, sqlError("read wrapped key", err)
	}
	w, err := parseWrappedKey(raw)
	if err != nil {
		return nil, err
	}
	storageKey, err := w.unwrap(passphrase)
	if err != nil {
		return nil, err
	}
	defer clear(storageKey[:])

	if version < len(ms) {
		if err := migrate(ctx, sdb, ms); err != nil {
			return nil, err
		}
	}
	db := &DB{path: path, sql: sdb, keys: deriveKeys(&storageKey)}
	db.insecure.Store(w.insecure)
	if !w.insecure && weaker(w.params, kdfParams) {
		if err := db.rewrap(ctx, raw, &storageKey, passphrase); err != nil {
			db.keys.wipe()
			return nil, fmt.Errorf("clientdb: raising the Argon2id cost: %w", err)
		}
	}
	return db, nil
}

// Close closes the store and wipes its keys from memory (as far as Go
// allows). Later calls return ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	db.keys.wipe()
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("clientdb: close: %w", err)
	}
	return nil
}

// Insecure reports whether the storage key is stored in the clear, so that
// anyone who copies the file can read it. The UI should say so.
func (db *DB) Insecure() bool { return db.insecure.Load() }

// ChangePassphrase rewraps the storage key under a new passphrase (with a
// fresh salt and the current Argon2id cost), without re-encrypting any
// data. On an insecure store oldPassphrase must be empty, and the store becomes
// protected. newPassphrase must not be empty.
//
// What it cannot do: a copy of the file taken before the change still
// opens with the old passphrase, and holds the same storage key. Against
// someone who has both an old copy and the old passphrase only a new
// storage key (re-encrypting everything) would help; this package does not
// do that.
func (db *DB) ChangePassphrase(oldPassphrase, newPassphrase []byte) error {
	if len(newPassphrase) == 0 {
		return ErrEmptyPassphrase
	}
	db.passMu.Lock()
	defer db.passMu.Unlock()
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	ctx := context.Background()
	var raw []byte
	if err := db.sql.QueryRowContext(ctx, "SELECT wrapped FROM keyring WHERE id = 1").Scan(&raw); err != nil {
		return sqlError("read wrapped key", err)
	}
	w, err := parseWrappedKey(raw)
	if err != nil {
		return err
	}
	if w.insecure && len(oldPassphrase) != 0 {
		return ErrWrongPassphrase
	}
	storageKey, err := w.unwrap(oldPassphrase)
	if err != nil {
		return err
	}
	defer clear(storageKey[:])
	// The row must hold the key this DB is using: if another process
	// replaced it, rewrapping would hand the new passphrase someone else's
	// key.
	k := deriveKeys(&storageKey)
	same := primitives.Equal(k.sealKey[:], db.keys.sealKey[:])
	k.wipe()
	if !same {
		return fmt.Errorf("%w: the wrapped key no longer matches the open store", ErrCorrupt)
	}
	if err := db.rewrap(ctx, raw, &storageKey, newPassphrase); err != nil {
		return err
	}
	db.insecure.Store(false)
	return nil
}

// rewrap replaces the wrapped key old with storageKey wrapped under
// passphrase, then checkpoints the WAL so that the old wrapped key does not
// stay readable in it (secure_delete zeroes it in the main file).
func (db *DB) rewrap(ctx context.Context, old []byte, storageKey *[StorageKeySize]byte, passphrase []byte) error {
	wrapped, err := WrapKey(storageKey, passphrase, kdfParams)
	if err != nil {
		return err
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return sqlError("begin", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "UPDATE keyring SET wrapped = ? WHERE id = 1 AND wrapped = ?", wrapped, old)
	if err != nil {
		return sqlError("store wrapped key", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.New("clientdb: the passphrase was changed concurrently")
	}
	if err := tx.Commit(); err != nil {
		return sqlError("commit", err)
	}
	// Best effort: a checkpoint cannot finish while another connection
	// reads an older snapshot; the WAL is then cleared at a later
	// checkpoint or at Close. The filesystem may keep the truncated blocks,
	// which no database can prevent.
	_, _ = db.sql.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return nil
}

// use runs fn with the store's keys while holding the close lock.
func (db *DB) use(fn func(k *keys) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	return fn(db.keys)
}
