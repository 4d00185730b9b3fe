package postgres_test

import (
	"context"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/storetest"
)

// The tests need a PostgreSQL server they may create databases on. The
// README's test command (scripts/test) starts a throwaway one and sets
// both variables.
const (
	dsnEnv     = "PARLEY_TEST_POSTGRES_DSN"
	requireEnv = "PARLEY_REQUIRE_SERVICES"
	// setupTimeout bounds creating or dropping one test database.
	setupTimeout = time.Minute
)

// serverDSN returns the DSN of the test server, or skips the test when
// there is none — unless services are required, when a missing server is
// a broken setup and fails the test.
func serverDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn != "" {
		return dsn
	}
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s=1 but %s is empty: the PostgreSQL tests cannot run", requireEnv, dsnEnv)
	}
	t.Skipf("no PostgreSQL server: run ./scripts/test, or set %s to a server where the tests may create databases "+
		"(e.g. \"host=127.0.0.1 user=postgres password=... dbname=postgres\") and run go test", dsnEnv)
	return ""
}

// withDatabase returns dsn with its database replaced by name. It handles
// both DSN forms pgx accepts: a postgres:// URL and keyword/value pairs,
// where a later dbname overrides an earlier one.
func withDatabase(t testing.TB, dsn, name string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s is not a valid URL: %v", dsnEnv, err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}

// newDatabase creates an empty database with a random name on the test
// server, drops it when the test ends, and returns its DSN.
func newDatabase(t testing.TB) string {
	t.Helper()
	dsn := serverDSN(t)
	var r [8]byte
	primitives.Random(r[:])
	name := "parley_test_" + hex.EncodeToString(r[:])

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the test server (%s): %v", dsnEnv, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		admin, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("connect to drop %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		// WITH (FORCE): a test that failed may have left a connection.
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return withDatabase(t, dsn, name)
}

func mustOpen(t testing.TB, dsn string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	serverDSN(t)
	storetest.Run(t, func(t *testing.T) func() store.Store {
		dsn := newDatabase(t)
		return func() store.Store {
			s, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}
