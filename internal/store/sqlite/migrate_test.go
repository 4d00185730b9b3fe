package sqlite_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// rawDB opens the file directly, bypassing the engine, to inspect or
// tamper with it.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustOpen(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func schemaVersions(t *testing.T, path string) []int {
	t.Helper()
	rows, err := rawDB(t, path).Query("SELECT version FROM schema_version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

func TestMigrateFresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fresh.db")
	s := mustOpen(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if sqlite.SchemaVersion() < 1 {
		t.Fatalf("SchemaVersion() = %d: no migrations embedded", sqlite.SchemaVersion())
	}
	if vs := schemaVersions(t, path); len(vs) != 1 || vs[0] != sqlite.SchemaVersion() {
		t.Errorf("schema_version = %v, want [%d]", vs, sqlite.SchemaVersion())
	}
	var mode string
	if err := rawDB(t, path).QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestMigrateReopenIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reopen.db")
	ctx := context.Background()
	s := mustOpen(t, path)
	if err := s.CreateInvite(ctx, []byte("kept"), testTime); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for range 3 {
		s = mustOpen(t, path)
		s.Close()
	}
	if vs := schemaVersions(t, path); len(vs) != 1 || vs[0] != sqlite.SchemaVersion() {
		t.Errorf("schema_version after reopening = %v, want [%d]", vs, sqlite.SchemaVersion())
	}
	var n int
	if err := rawDB(t, path).QueryRow("SELECT count(*) FROM invites").Scan(&n); err != nil || n != 1 {
		t.Errorf("invites after reopening = %d, %v; want the one written", n, err)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "newer.db")
	mustOpen(t, path).Close()
	db := rawDB(t, path)
	if _, err := db.Exec("UPDATE schema_version SET version = ?", sqlite.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := sqlite.Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database with a newer schema")
	}
	t.Logf("Open: %v", err)
	if !errors.Is(err, sqlite.ErrSchemaTooNew) {
		t.Errorf("Open: %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("error %q does not tell the operator what to do", err)
	}
	// The refusal changed nothing.
	if vs := schemaVersions(t, path); len(vs) != 1 || vs[0] != sqlite.SchemaVersion()+1 {
		t.Errorf("schema_version after refusal = %v", vs)
	}
}

func TestOpenGarbageFile(t *testing.T) {
	dir := t.TempDir()
	random := make([]byte, 8192)
	rand.Read(random)
	header := append([]byte("SQLite format 3\x00"), random[:4096]...)
	for name, content := range map[string][]byte{
		"random":      random,
		"text":        []byte(strings.Repeat("this is not a database\n", 200)),
		"fake header": header,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := sqlite.Open(path)
			if err == nil {
				s.Close()
				t.Fatal("Open accepted a garbage file")
			}
			t.Logf("Open: %v", err)
			if !errors.Is(err, sqlite.ErrCorrupt) {
				t.Errorf("Open: %v, want ErrCorrupt", err)
			}
			if !strings.HasPrefix(err.Error(), "sqlite: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestOpenCorruptedDatabase overwrites the pages after the header of a
// real database: Open or the first calls must fail with an error, never
// panic.
func TestOpenCorruptedDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "corrupt.db")
	s := mustOpen(t, path)
	ctx := context.Background()
	for i := range 50 {
		if err := s.CreateInvite(ctx, []byte{byte(i), 'x'}, testTime); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 4096 {
		t.Fatalf("database is only %d bytes", len(b))
	}
	garbage := make([]byte, len(b)-100)
	rand.Read(garbage)
	copy(b[100:], garbage)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(path)
	if err != nil {
		t.Logf("Open: %v", err)
		return
	}
	defer s.Close()
	_, err = s.Account(ctx, "alice")
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Logf("Account on a corrupted database: %v", err)
	}
}

func TestOpenDirectory(t *testing.T) {
	s, err := sqlite.Open(t.TempDir())
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a directory")
	}
	if !strings.Contains(err.Error(), "directory") {
		t.Errorf("Open(directory): %v", err)
	}
}

func TestCloseTwice(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "twice.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestOpenOddPath opens a path with characters that mean something in a
// URI: the file must land exactly there.
func TestOpenOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?x=1#frag", "parley %20.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path).Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not created at %q: %v", path, err)
	}
}

// TestMigrationQueuesExistingDeviceLists: a server upgraded to the schema
// with key transparency (0004) puts every device list published before
// the upgrade into the log, each account's versions in order — otherwise
// clients, which verify every lookup against the log, could not reach
// accounts that existed before the upgrade.
func TestMigrationQueuesExistingDeviceLists(t *testing.T) {
	// The schema as a release before key transparency left it.
	path := oldDatabase(t, 3,
		"INSERT INTO accounts (username, account_key, created, list_version) VALUES ('bob', x'01', 0, 1), ('alice', x'02', 0, 2)",
		"INSERT INTO device_lists (username, version, signed) VALUES ('alice', 2, x'a2'), ('bob', 1, x'b1'), ('alice', 1, x'a1')",
	)
	s := mustOpen(t, path)
	defer s.Close()
	got, err := s.PendingKT(context.Background(), 0, 10)
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
		if i > 0 && g.Seq <= got[i-1].Seq {
			t.Errorf("update %d has seq %d after %d: not in order", i, g.Seq, got[i-1].Seq)
		}
	}
}

// TestMigrationKeepsQueueLengths: the upgrade that moves queue lengths out
// of the devices rows (0005) carries every device's count over, and the
// counters then follow sends, acks and device removal — otherwise the
// queue limit would refuse or admit the wrong sends after an upgrade. It
// also starts each device's last Seq at the largest Seq still queued for
// it (0 for an empty queue), so the first envelope after the upgrade
// reports that as its Prev: a Prev of 0 there would tell a delivery
// stream that nothing lies before the new envelope when the queue holds
// some.
func TestMigrationKeepsQueueLengths(t *testing.T) {
	path := oldDatabase(t, 4,
		"INSERT INTO accounts (username, account_key, created, list_version) VALUES ('alice', x'01', 0, 1)",
		"INSERT INTO devices (id, username, public, added, last_seen) VALUES ("+hexID("aa")+", 'alice', x'01', 0, 0), ("+
			hexID("bb")+", 'alice', x'02', 0, 0), ("+hexID("dd")+", 'alice', x'03', 0, 0)",
		// Seqs 1, 2 and 4 for aa, 3 for bb; aa's 4 is acknowledged
		// before the upgrade, so aa's largest queued Seq is 2.
		"INSERT INTO envelopes (device, message_id, sender_username, sender_device, body, created, expires) VALUES "+
			"("+hexID("aa")+", "+hexID("01")+", 'bob', "+hexID("cc")+", x'00', 0, 9223372036854775807), "+
			"("+hexID("aa")+", "+hexID("02")+", 'bob', "+hexID("cc")+", x'00', 0, 9223372036854775807), "+
			"("+hexID("bb")+", "+hexID("03")+", 'bob', "+hexID("cc")+", x'00', 0, 9223372036854775807), "+
			"("+hexID("aa")+", "+hexID("04")+", 'bob', "+hexID("cc")+", x'00', 0, 9223372036854775807)",
		"DELETE FROM envelopes WHERE seq = 4",
	)

	s := mustOpen(t, path)
	defer s.Close()
	ctx := context.Background()
	var a, b, d store.DeviceID
	for i := range a {
		a[i], b[i], d[i] = 0xaa, 0xbb, 0xdd
	}
	length := func(id store.DeviceID) int {
		t.Helper()
		n, err := s.QueueLength(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if la, lb := length(a), length(b); la != 2 || lb != 1 {
		t.Fatalf("queue lengths after the upgrade = %d, %d; want 2, 1", la, lb)
	}
	envs, err := s.Fetch(ctx, a, 0, 10)
	if err != nil || len(envs) != 2 {
		t.Fatalf("Fetch = %d envelopes, %v; want 2", len(envs), err)
	}
	if err := s.Ack(ctx, a, []uint64{envs[0].Seq}); err != nil {
		t.Fatal(err)
	}
	err = s.Enqueue(ctx, store.Send{MaxQueue: 1, Envelopes: []store.Envelope{{
		Device: a, MessageID: store.MessageID{9}, SenderUsername: "bob", Body: []byte{1},
		Created: time.Now(), Expires: time.Now().Add(time.Hour),
	}}})
	var full *store.QueueFullError
	if !errors.As(err, &full) {
		t.Fatalf("a send to a queue of 1 at limit 1: %v, want QueueFullError", err)
	}
	if n := length(a); n != 1 {
		t.Errorf("queue length after an ack and a refused send = %d, want 1", n)
	}

	// The first envelope of each device after the upgrade follows the
	// device's largest queued Seq at the upgrade (aa's ack after it and
	// the refused send change nothing), and gets a Seq above every Seq
	// ever used.
	for _, tc := range []struct {
		id   store.DeviceID
		prev uint64
	}{{a, 2}, {b, 3}, {d, 0}} {
		send := store.Send{Envelopes: []store.Envelope{{
			Device: tc.id, MessageID: store.MessageID{8}, SenderUsername: "bob", Body: []byte{1},
			Created: time.Now(), Expires: time.Now().Add(time.Hour),
		}}}
		if err := s.Enqueue(ctx, send); err != nil {
			t.Fatal(err)
		}
		if e := send.Envelopes[0]; e.Prev != tc.prev || e.Seq <= 4 {
			t.Errorf("device %x: first envelope after the upgrade has Seq %d, Prev %d; want Prev %d and a Seq above 4", tc.id[:1], e.Seq, e.Prev, tc.prev)
		}
	}
}

// hexID is a 16-byte id of the byte b (two hex digits) as an SQL literal.
func hexID(b string) string { return "x'" + strings.Repeat(b, 16) + "'" }

// oldDatabase makes a database file as a release at schema version left
// it — migrations 0001 to version, applied from the files, and the version
// recorded — runs stmts on it, and returns its path.
func oldDatabase(t *testing.T, version int, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "upgrade.db")
	db := rawDB(t, path)
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) < version {
		t.Fatalf("migrations: %d files, %v", len(files), err)
	}
	for _, f := range files[:version] { // Glob sorts: 0001_… first
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	stmts = append([]string{
		"CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT",
		fmt.Sprintf("INSERT INTO schema_version (version) VALUES (%d)", version),
	}, stmts...)
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
