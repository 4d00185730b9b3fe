package clientdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
)

func TestCreateOpen(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	if db.Insecure() {
		t.Error("a passphrase store reports Insecure")
	}
	if _, err := db.Identity(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("Identity before registration: %v, want ErrNotFound", err)
	}
	if err := db.PutIdentity(ctx, sampleIdentity()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode %v, want 0600", fi.Mode().Perm())
	}
	db = reopen(t, db, path)
	id, err := db.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id.Username != "carol" {
		t.Errorf("after reopen: %+v", id)
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	_, path := newDB(t)
	_, err := Create(path, testPass, Options{})
	if !errors.Is(err, ErrExists) || !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over a store: %v, want ErrExists and fs.ErrExist", err)
	}
	other := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(other, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(other, testPass, Options{}); !errors.Is(err, ErrExists) {
		t.Errorf("Create over a file: %v", err)
	}
	if b, _ := os.ReadFile(other); string(b) != "precious" {
		t.Error("Create changed an existing file")
	}
}

func TestCreatePassphraseRules(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(filepath.Join(dir, "a"), nil, Options{}); !errors.Is(err, ErrEmptyPassphrase) {
		t.Errorf("empty passphrase: %v", err)
	}
	if _, err := Create(filepath.Join(dir, "b"), []byte("x"), Options{Insecure: true}); err == nil {
		t.Error("insecure store with a passphrase accepted")
	}
	for _, n := range []string{"a", "b"} {
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("failed Create left %s behind", n)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing"), testPass); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("Open created a file")
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not sqlite "), 500), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(junk, testPass); !errors.Is(err, ErrNotDatabase) {
		t.Errorf("Open junk: %v, want ErrNotDatabase", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(empty, testPass); !errors.Is(err, ErrNotDatabase) {
		t.Errorf("Open empty file: %v, want ErrNotDatabase", err)
	}
	// Some other SQLite database.
	other := filepath.Join(dir, "other.db")
	sdb, err := sql.Open("sqlite", "file:"+other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec("CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	if _, err := Open(other, testPass); !errors.Is(err, ErrNotDatabase) {
		t.Errorf("Open another SQLite file: %v, want ErrNotDatabase", err)
	}
	if _, err := Open(dir, testPass); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

func TestWrongPassphrase(t *testing.T) {
	db, path := newDB(t)
	if err := db.SetSetting(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{nil, []byte("wrong"), append(bytes.Clone(testPass), 'x'), testPass[:len(testPass)-1]} {
		db2, err := Open(path, p)
		if !errors.Is(err, ErrWrongPassphrase) || db2 != nil {
			t.Errorf("Open(%q) = %v, %v; want ErrWrongPassphrase", p, db2, err)
		}
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("a failed Open changed the file")
	}
}

func TestTamperedWrappedKeyInFile(t *testing.T) {
	db, path := newDB(t)
	var raw []byte
	if err := db.sql.QueryRow("SELECT wrapped FROM keyring").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 5, 8, 20, 40, len(raw) - 1} {
		b := bytes.Clone(raw)
		b[i] ^= 0x40
		if _, err := db.sql.Exec("UPDATE keyring SET wrapped = ?", b); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, testPass)
		if !errors.Is(err, ErrWrongPassphrase) && !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d changed: Open = %v", i, err)
		}
	}
	if _, err := db.sql.Exec("DELETE FROM keyring"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, testPass); !errors.Is(err, ErrCorrupt) {
		t.Errorf("no keyring row: %v", err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	db, path := newDB(t)
	if _, err := db.sql.Exec("UPDATE schema_version SET version = ?", SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, testPass); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestMigrationsNumbered(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || SchemaVersion() != len(ms) {
		t.Fatalf("SchemaVersion %d, %d migrations", SchemaVersion(), len(ms))
	}
}

// TestMigrateAppliesNewer runs the migration mechanism with a made-up
// migration 2 on a version-1 store (the only migration today is 1): it is
// applied once, recorded, and afterwards this code refuses the store as
// too new.
func TestMigrateAppliesNewer(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	next := append(ms, migration{Version: len(ms) + 1, Name: "9999_test.sql", SQL: "CREATE TABLE extra (x INTEGER) STRICT;"})
	if err := migrate(ctx, db.sql, next); err != nil {
		t.Fatal(err)
	}
	if v, err := schemaVersion(ctx, db.sql); err != nil || v != len(next) {
		t.Fatalf("version after migration = %d, %v", v, err)
	}
	if err := migrate(ctx, db.sql, next); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if err := migrate(ctx, db.sql, ms); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("migrate with older code: %v", err)
	}
	db.Close()
	if _, err := Open(path, testPass); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open after a newer migration: %v", err)
	}
}

func TestInsecureStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := Create(path, nil, Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if !db.Insecure() {
		t.Error("insecure store does not report Insecure")
	}
	if err := db.SetSetting(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !db.Insecure() {
		t.Error("reopened insecure store does not report Insecure")
	}
	// Protect it with a passphrase.
	if err := db.ChangePassphrase([]byte("x"), []byte("new")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("ChangePassphrase with a made-up old passphrase: %v", err)
	}
	if err := db.ChangePassphrase(nil, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if db.Insecure() {
		t.Error("still Insecure after setting a passphrase")
	}
	db.Close()
	if _, err := Open(path, nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Open without passphrase after protecting: %v", err)
	}
	db, err = Open(path, []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.Setting(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("Setting after protecting = %q, %v", v, err)
	}
}

func TestChangePassphrase(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	if err := db.SetSetting(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	var sealedBefore []byte
	db.sql.QueryRow("SELECT value FROM settings").Scan(&sealedBefore)
	var oldWrapped []byte
	db.sql.QueryRow("SELECT wrapped FROM keyring").Scan(&oldWrapped)

	if err := db.ChangePassphrase([]byte("wrong"), []byte("new")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong old passphrase: %v", err)
	}
	if err := db.ChangePassphrase(testPass, nil); !errors.Is(err, ErrEmptyPassphrase) {
		t.Errorf("empty new passphrase: %v", err)
	}
	if err := db.ChangePassphrase(testPass, []byte("new passphrase")); err != nil {
		t.Fatal(err)
	}
	// Still usable, and no data was re-encrypted.
	if v, err := db.Setting(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("Setting after change = %q, %v", v, err)
	}
	var sealedAfter []byte
	db.sql.QueryRow("SELECT value FROM settings").Scan(&sealedAfter)
	if !bytes.Equal(sealedBefore, sealedAfter) {
		t.Error("ChangePassphrase re-encrypted data")
	}
	// The old wrapped key is gone from the files, not just from the row.
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, oldWrapped[wrapHeaderLen+wrapParamsLen:]) {
			t.Errorf("%s still holds the old wrapped key", filepath.Base(f))
		}
	}
	db.Close()
	if _, err := Open(path, testPass); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("old passphrase after change: %v", err)
	}
	db2, err := Open(path, []byte("new passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if v, err := db2.Setting(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("Setting after reopen = %q, %v", v, err)
	}
}

// TestOpenRaisesArgon2Cost: a key wrapped under a lower cost than the
// current one is rewrapped at the current cost when the store is opened.
func TestOpenRaisesArgon2Cost(t *testing.T) {
	db, path := newDB(t)
	var raw []byte
	db.sql.QueryRow("SELECT wrapped FROM keyring").Scan(&raw)
	sk, _, err := UnwrapKey(raw, testPass)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := WrapKey(&sk, testPass, primitives.Argon2Params{MemoryKiB: 8, Time: 1, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.sql.Exec("UPDATE keyring SET wrapped = ?", weak); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db2, err := Open(path, testPass)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	db2.sql.QueryRow("SELECT wrapped FROM keyring").Scan(&raw)
	w, err := parseWrappedKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	if w.params != kdfParams {
		t.Errorf("after Open the cost is %+v, want %+v", w.params, kdfParams)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := db.Identity(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Identity after Close: %v", err)
	}
	if err := db.Update(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
	if err := db.ChangePassphrase(testPass, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("ChangePassphrase after Close: %v", err)
	}
}

func TestDeleteSetting(t *testing.T) {
	ctx := context.Background()
	db, err := Create(filepath.Join(t.TempDir(), "p.db"), nil, Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, n := range []string{"a", "b"} {
		if err := db.SetSetting(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteSetting(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Setting(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted setting: %v, want ErrNotFound", err)
	}
	if v, err := db.Setting(ctx, "b"); err != nil || string(v) != "b" {
		t.Errorf("the other setting: %q, %v", v, err)
	}
	if err := db.DeleteSetting(ctx, "never set"); err != nil {
		t.Errorf("deleting an unset setting: %v", err)
	}
}
