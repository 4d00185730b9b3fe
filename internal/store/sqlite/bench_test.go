package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
	"github.com/parleyim/parley/internal/store/storetest"
)

// BenchmarkEnqueue measures group commit against a floor
// (storetest.BenchmarkEnqueue):
//
//	go test -run '^$' -bench BenchmarkEnqueue -benchtime 20000x ./internal/store/sqlite/
//
// The floor inserts the same rows into the same schema (same pragmas, same
// INSERT, same triggers and indexes) on one connection, BenchFloorBatch rows
// per transaction: what this file system and SQLite cost without the
// store's checks, savepoints and goroutine hand-offs.
func BenchmarkEnqueue(b *testing.B) {
	storetest.BenchmarkEnqueue(b, storetest.EnqueueBench{
		Open: func(b *testing.B) (store.Store, string) {
			path := filepath.Join(b.TempDir(), "bench.db")
			s, err := sqlite.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			return s, path
		},
		Floor: sqliteFloor,
	})
}

func sqliteFloor(b *testing.B, path string) func([]store.Envelope) error {
	db, err := sql.Open("sqlite", "file:"+path+
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=cache_size(-16384)")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	ins, err := conn.PrepareContext(ctx, `INSERT INTO envelopes
		(device, message_id, sender_username, sender_device, body, created, expires)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device, message_id) DO NOTHING`)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ins.Close() })
	return func(batch []store.Envelope) error {
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return err
		}
		for _, e := range batch {
			if _, err := ins.ExecContext(ctx, e.Device[:], e.MessageID[:], e.SenderUsername, e.SenderDevice[:],
				e.Body, e.Created.UnixMicro(), e.Expires.UnixMicro()); err != nil {
				return err
			}
		}
		_, err := conn.ExecContext(ctx, "COMMIT")
		return err
	}
}
