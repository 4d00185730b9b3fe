package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleyim/parley/internal/schema"
)

// migrationFiles are the schema migrations, numbered from 0001 without
// gaps. A migration is never edited once released: a change is a new file.
// migrate.Load reads them: despite its name it only knows the
// NNNN_name.sql naming rules, not SQLite.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the key of the advisory lock that serializes the
// migrations of nodes starting at once ("parley" in ASCII). Advisory locks
// are per database, so databases on one server do not contend.
const migrationLock int64 = 0x7061726c6579

// migrations returns the embedded migrations in order, checking that they
// are numbered 1..n.
func migrations() ([]schema.Migration, error) {
	ms, err := schema.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return ms, nil
}

// SchemaVersion is the schema version this program writes.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate brings the database's schema up to date in one transaction:
// PostgreSQL's DDL is transactional, so a crash or a failing migration
// leaves the old schema, never half of the new one. The transaction first
// takes an advisory lock, so that of several nodes starting against a
// fresh database one applies the migrations and the others wait and then
// find them applied. It refuses a database whose schema is newer than this
// program's: the newer schema may mean something this code would silently
// break.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return dbError("lock for migration", err)
		}
		// The singleton column allows exactly one row.
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
			version   INTEGER NOT NULL CHECK (version >= 0))`); err != nil {
			return dbError("create schema_version", err)
		}
		var current, rows int
		if err := tx.QueryRow(ctx, "SELECT count(*), coalesce(max(version), 0) FROM schema_version").Scan(&rows, &current); err != nil {
			return dbError("read schema version", err)
		}
		switch {
		case rows > 1:
			return fmt.Errorf("postgres: schema_version holds %d rows, want 1: %w", rows, ErrCorrupt)
		case current > len(ms):
			return fmt.Errorf("%w: database has schema version %d, this program knows up to %d; upgrade parleyd", ErrSchemaTooNew, current, len(ms))
		case current == len(ms):
			return nil
		}
		for _, m := range ms[current:] {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("postgres: apply migration %s: %w", m.Name, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)
			ON CONFLICT (singleton) DO UPDATE SET version = excluded.version`, len(ms)); err != nil {
			return dbError("record schema version", err)
		}
		return nil
	})
}
