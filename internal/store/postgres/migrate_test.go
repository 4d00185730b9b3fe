package postgres_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
)

// rawConn connects to dsn directly, bypassing the engine, to inspect or
// tamper with the database.
func rawConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgtest.SetupTimeout)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func schemaVersions(t *testing.T, dsn string) []int {
	t.Helper()
	rows, err := rawConn(t, dsn).Query(context.Background(), "SELECT version FROM schema_version")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestMigrateFresh(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	if postgres.SchemaVersion() < 1 {
		t.Fatalf("SchemaVersion() = %d: no migrations embedded", postgres.SchemaVersion())
	}
	if err := mustOpen(t, dsn).Close(); err != nil {
		t.Fatal(err)
	}
	if vs := schemaVersions(t, dsn); len(vs) != 1 || vs[0] != postgres.SchemaVersion() {
		t.Errorf("schema_version = %v, want [%d]", vs, postgres.SchemaVersion())
	}
}

func TestMigrateReopenIsIdempotent(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	s := mustOpen(t, dsn)
	if err := s.CreateInvite(ctx, []byte("kept"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for range 2 {
		mustOpen(t, dsn).Close()
	}
	if vs := schemaVersions(t, dsn); len(vs) != 1 || vs[0] != postgres.SchemaVersion() {
		t.Errorf("schema_version after reopening = %v, want [%d]", vs, postgres.SchemaVersion())
	}
	var n int
	if err := rawConn(t, dsn).QueryRow(ctx, "SELECT count(*) FROM invites").Scan(&n); err != nil || n != 1 {
		t.Errorf("invites after reopening = %d, %v; want the one written before", n, err)
	}
}

// TestMigrateConcurrentOpen starts several nodes against one fresh
// database at once: the advisory lock lets one migrate while the others
// wait, so every Open succeeds and the schema is applied once.
func TestMigrateConcurrentOpen(t *testing.T) {
	const nodes = 8
	dsn := pgtest.NewDatabase(t)
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		stores = make([]*postgres.Store, nodes)
		errs   = make([]error, nodes)
	)
	for i := range nodes {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.Open(context.Background(), dsn)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		stores[i].Close()
	}
	if vs := schemaVersions(t, dsn); len(vs) != 1 || vs[0] != postgres.SchemaVersion() {
		t.Errorf("schema_version = %v, want [%d]", vs, postgres.SchemaVersion())
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	mustOpen(t, dsn).Close()
	ctx := context.Background()
	if _, err := rawConn(t, dsn).Exec(ctx, "UPDATE schema_version SET version = $1", postgres.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(ctx, dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database with a newer schema")
	}
	if !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Errorf("Open: %v, want ErrSchemaTooNew", err)
	}
	// Refusing changed nothing.
	if vs := schemaVersions(t, dsn); len(vs) != 1 || vs[0] != postgres.SchemaVersion()+1 {
		t.Errorf("schema_version after refusal = %v, want [%d]", vs, postgres.SchemaVersion()+1)
	}
}

// TestMigrateFailureLeavesOldSchema: a migration that fails part-way is
// rolled back with everything before it in the same run, since the whole
// run is one transaction. A table in the way of the first migration makes
// it fail after it has created others.
func TestMigrateFailureLeavesOldSchema(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	c := rawConn(t, dsn)
	if _, err := c.Exec(ctx, "CREATE TABLE invites (in_the_way INTEGER)"); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(ctx, dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded although a migration cannot apply")
	}
	var tables []string
	rows, err := c.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
	if err != nil {
		t.Fatal(err)
	}
	tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || tables[0] != "invites" {
		t.Errorf("tables after a failed migration = %v, want only the one that was there", tables)
	}
}

// TestMigrationQueuesExistingDeviceLists: upgrading to the schema with key
// transparency (0004) puts every device list published before it into the
// log, each account's versions in order (see the SQLite twin).
func TestMigrationQueuesExistingDeviceLists(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	c := rawConn(t, dsn)
	for _, f := range []string{"0001_init.sql", "0002_mailboxes.sql", "0003_backups.sql"} {
		body, err := os.ReadFile(filepath.Join("migrations", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	for _, q := range []string{
		`CREATE TABLE schema_version (singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton), version INTEGER NOT NULL CHECK (version >= 0))`,
		"INSERT INTO schema_version (version) VALUES (3)",
		`INSERT INTO accounts (username, account_key, created, list_version) VALUES ('bob', '\x01', 0, 1), ('alice', '\x02', 0, 2)`,
		`INSERT INTO device_lists (username, version, signed) VALUES ('alice', 2, '\xa2'), ('bob', 1, '\xb1'), ('alice', 1, '\xa1')`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.PendingKT(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name    string
		version uint32
		value   byte
	}{{"alice", 0, 0xa1}, {"alice", 1, 0xa2}, {"bob", 0, 0xb1}}
	if len(got) != len(want) {
		t.Fatalf("PendingKT after the upgrade: %d updates, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Username != w.name || g.Version != w.version || len(g.Value) != 1 || g.Value[0] != w.value {
			t.Errorf("update %d = %s v%d %x, want %s v%d %x", i, g.Username, g.Version, g.Value, w.name, w.version, w.value)
		}
	}
}
