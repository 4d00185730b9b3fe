package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/parleyim/parley/internal/schema"
)

// migrationFiles are the schema migrations, numbered from 0001 without
// gaps. A migration is never edited once released: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration = schema.Migration

// migrations returns the embedded migrations in order, checking that they
// are numbered 1..n.
func migrations() ([]migration, error) {
	ms, err := schema.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
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

// migrate brings the database's schema up to date in one transaction, so
// a crash mid-migration leaves the old schema, never half of the new one.
// It refuses a database whose schema is newer than this program's: the
// newer schema may mean something this code would silently break.
func migrate(ctx context.Context, conn *sql.Conn) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	// IMMEDIATE takes the write lock up front, so two processes opening a
	// fresh file cannot both decide to apply migration 1.
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT"); err != nil {
		return fmt.Errorf("sqlite: create schema_version: %w", err)
	}
	var (
		current int
		rows    int
	)
	if err := conn.QueryRowContext(ctx, "SELECT count(*), coalesce(max(version), 0) FROM schema_version").Scan(&rows, &current); err != nil {
		return fmt.Errorf("sqlite: read schema version: %w", err)
	}
	switch {
	case rows > 1:
		return fmt.Errorf("sqlite: schema_version holds %d rows, want 1: %w", rows, ErrCorrupt)
	case current > len(ms):
		return fmt.Errorf("%w: database has schema version %d, this program knows up to %d; upgrade parleyd", ErrSchemaTooNew, current, len(ms))
	case current < 0:
		return fmt.Errorf("sqlite: schema version %d is negative: %w", current, ErrCorrupt)
	}
	if current == len(ms) {
		_, err := conn.ExecContext(ctx, "COMMIT")
		return err
	}
	for _, m := range ms[current:] {
		if _, err := conn.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: apply migration %s: %w", m.Name, err)
		}
	}
	if rows == 0 {
		_, err = conn.ExecContext(ctx, "INSERT INTO schema_version (version) VALUES (?)", len(ms))
	} else {
		_, err = conn.ExecContext(ctx, "UPDATE schema_version SET version = ?", len(ms))
	}
	if err != nil {
		return fmt.Errorf("sqlite: record schema version: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite: commit migration: %w", err)
	}
	return nil
}
