package clientdb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/parleyim/parley/internal/schema"
)

// migrationFiles are the schema migrations, numbered from 0001 without
// gaps. A released migration is never edited: a change is a new file. The
// schema_version table and the keyring format stay outside them, because
// Open reads both before it knows whether it may migrate.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration = schema.Migration

// migrations returns the embedded migrations in order, checking that they
// are numbered 1..n.
func migrations() ([]migration, error) {
	ms, err := schema.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("clientdb: %w", err)
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

// schemaVersion reads the version of an open store.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&v)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && v < 0) {
		return 0, fmt.Errorf("%w: no schema version", ErrCorrupt)
	}
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return 0, fmt.Errorf("%w: no schema version table", ErrNotDatabase)
		}
		return 0, sqlError("read schema version", err)
	}
	return v, nil
}

// migrate brings an open store up to date in one transaction, so a crash
// mid-migration leaves the old schema, never half of the new one. The
// version is read again inside the transaction: another process may have
// migrated in between, and the write lock of BEGIN IMMEDIATE stops two
// from doing it at once.
func migrate(ctx context.Context, db *sql.DB, ms []migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return sqlError("begin migration", err)
	}
	defer tx.Rollback()
	v, err := schemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	if v > len(ms) {
		return fmt.Errorf("%w: version %d, this program knows %d", ErrSchemaTooNew, v, len(ms))
	}
	if err := applyMigrations(ctx, tx, ms, v); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return sqlError("commit migration", err)
	}
	return nil
}

// applyMigrations applies the migrations after version from, recording
// each.
func applyMigrations(ctx context.Context, tx *sql.Tx, ms []migration, from int) error {
	for _, m := range ms[from:] {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return sqlError("migration "+m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE schema_version SET version = ?", m.Version); err != nil {
			return sqlError("record migration "+m.Name, err)
		}
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
