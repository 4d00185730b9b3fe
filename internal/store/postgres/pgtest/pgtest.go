// Package pgtest gives tests a throwaway PostgreSQL database on the server
// named by PARLEY_TEST_POSTGRES_DSN (scripts/test starts one), or a
// throwaway server of their own (StartServer) for tests that stop and
// start it. It is imported only by _test files.
package pgtest

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
)

// The tests need a PostgreSQL server they may create databases on. The
// README's test command (scripts/test) starts a throwaway one and sets
// both variables.
const (
	DSNEnv     = "PARLEY_TEST_POSTGRES_DSN"
	RequireEnv = "PARLEY_REQUIRE_SERVICES"
	// SetupTimeout bounds creating or dropping one test database.
	SetupTimeout = time.Minute
)

// ServerDSN returns the DSN of the test server, or skips the test when
// there is none — unless services are required, when a missing server is
// a broken setup and fails the test.
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(DSNEnv)
	if dsn != "" {
		return dsn
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s=1 but %s is empty: the PostgreSQL tests cannot run", RequireEnv, DSNEnv)
	}
	t.Skipf("no PostgreSQL server: run ./scripts/test, or set %s to a server where the tests may create databases "+
		"(e.g. \"host=127.0.0.1 user=postgres password=... dbname=postgres\") and run go test", DSNEnv)
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
			t.Fatalf("%s is not a valid URL: %v", DSNEnv, err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}

// NewDatabase creates an empty database with a random name on the test
// server, drops it when the test ends, and returns its DSN.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabaseOn(t, ServerDSN(t))
}

func newDatabaseOn(t testing.TB, dsn string) string {
	t.Helper()
	var r [8]byte
	primitives.Random(r[:])
	name := "parley_test_" + hex.EncodeToString(r[:])

	ctx, cancel := context.WithTimeout(context.Background(), SetupTimeout)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the test server (%s): %v", DSNEnv, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), SetupTimeout)
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
