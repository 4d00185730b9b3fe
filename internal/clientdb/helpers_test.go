package clientdb

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

var testPass = []byte("test passphrase, not a secret")

// newDB creates a store in a fresh temporary directory and closes it when
// the test ends.
func newDB(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := Create(path, testPass, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func reopen(t *testing.T, db *DB, path string) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(path, testPass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	return db2
}

func update(t *testing.T, db *DB, fn func(tx *Tx) error) {
	t.Helper()
	if err := db.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func devID(b byte) [16]byte {
	var d [16]byte
	for i := range d {
		d[i] = b
	}
	return d
}

func sampleIdentity() *Identity {
	return &Identity{
		Username:       "carol",
		ServerURL:      "https://parley.example",
		AccountKeySeed: []byte("account seed 0123456789abcdef!!!"),
		DeviceKeys:     []byte("device keys blob"),
		Prekeys:        []byte("prekey set blob"),
		DeviceList:     []byte("signed device list naming carol"),
		Token:          "tok-123",
		TokenExpiry:    t0.Add(time.Hour),
	}
}
