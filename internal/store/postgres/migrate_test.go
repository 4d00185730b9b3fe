package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/store"
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

// TestMigrationKeepsLastSeq: the upgrade that adds each device's last Seq
// (0005) starts it at the largest Seq still queued for the device (0 for
// an empty queue), so the first envelope after the upgrade reports that as
// its Prev (see the SQLite twin, TestMigrationKeepsQueueLengths): a Prev
// of 0 there would tell a delivery stream that nothing lies before the new
// envelope when the queue holds some.
func TestMigrationKeepsLastSeq(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	c := rawConn(t, dsn)
	for _, f := range []string{"0001_init.sql", "0002_mailboxes.sql", "0003_backups.sql", "0004_transparency.sql"} {
		body, err := os.ReadFile(filepath.Join("migrations", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	a, b, d, sender := idOf(0xaa), idOf(0xbb), idOf(0xdd), idOf(0xcc)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`CREATE TABLE schema_version (singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton), version INTEGER NOT NULL CHECK (version >= 0))`, nil},
		{"INSERT INTO schema_version (version) VALUES (4)", nil},
		{`INSERT INTO accounts (username, account_key, created, list_version) VALUES ('alice', '\x01', 0, 1)`, nil},
		{`INSERT INTO devices (id, username, public, added, last_seen, queue_len) VALUES ($1, 'alice', '\x01', 0, 0, 2), ($2, 'alice', '\x02', 0, 0, 1), ($3, 'alice', '\x03', 0, 0, 0)`,
			[]any{a[:], b[:], d[:]}},
		// Seqs 1, 2 and 4 for aa, 3 for bb; aa's 4 was acknowledged before
		// the upgrade, so aa's largest queued Seq is 2.
		{`INSERT INTO envelopes (device, seq, message_id, sender_username, sender_device, body, created, expires)
			SELECT dev, nextval('envelope_seq'), msg, 'bob', $3, '\x00', 0, 9223372036854775807
			FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY AS e (dev, msg, n) ORDER BY n`,
			[]any{[][]byte{a[:], a[:], b[:], a[:]}, [][]byte{msgOf(1), msgOf(2), msgOf(3), msgOf(4)}, sender[:]}},
		{"DELETE FROM envelopes WHERE seq = 4", nil},
	} {
		if _, err := c.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		id   store.DeviceID
		prev uint64
	}{{a, 2}, {b, 3}, {d, 0}} {
		e := sendOne(t, s, tc.id, 8)
		if e.Prev != tc.prev || e.Seq <= 4 {
			t.Errorf("device %x: first envelope after the upgrade has Seq %d, Prev %d; want Prev %d and a Seq above 4", tc.id[:1], e.Seq, e.Prev, tc.prev)
		}
	}
}

// TestPrevSurvivesOldNodesDuringUpgrade: nodes are upgraded one at a time,
// so nodes of the release before 0005 keep storing and acknowledging
// envelopes after another node migrated, without knowing last_seq. The
// migration's trigger must keep last_seq true for them; otherwise the next
// envelope stored by an upgraded node would report as Prev a Seq from
// before the old node's envelopes, and a delivery stream whose cursor
// equals that Prev would skip them. The old node is played by the
// statements of the 0004 release's batch and ack.
func TestPrevSurvivesOldNodesDuringUpgrade(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	s := mustOpen(t, dsn)
	defer s.Close()
	dev := idOf(0x42)
	register(t, s, "alice", dev)
	c := rawConn(t, dsn)

	// oldSend stores n envelopes for dev as a node of the old release
	// does, returning their Seqs.
	msg := byte(100)
	oldSend := func(n int) []int64 {
		t.Helper()
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var queueLen int64
		if err := tx.QueryRow(ctx, `SELECT queue_len FROM devices WHERE id = $1 FOR NO KEY UPDATE`, dev[:]).Scan(&queueLen); err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for range n {
			msg++
			var seq int64
			if err := tx.QueryRow(ctx, `INSERT INTO envelopes (device, seq, message_id, sender_username, sender_device, body, created, expires)
				VALUES ($1, nextval('envelope_seq'), $2, 'bob', $1, '\x00', 0, 9223372036854775807) RETURNING seq`,
				dev[:], msgOf(msg)).Scan(&seq); err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		if _, err := tx.Exec(ctx, `UPDATE devices AS d SET queue_len = u.queue_len
			FROM unnest($1::bytea[], $2::bigint[]) AS u (id, queue_len) WHERE d.id = u.id`,
			[][]byte{dev[:]}, []int64{queueLen + int64(n)}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	oldAck := func(seqs ...int64) {
		t.Helper()
		if _, err := c.Exec(ctx, `WITH gone AS (DELETE FROM envelopes WHERE device = $1 AND seq = ANY($2) RETURNING 1)
			UPDATE devices SET queue_len = queue_len - (SELECT count(*) FROM gone) WHERE id = $1`, dev[:], seqs); err != nil {
			t.Fatal(err)
		}
	}

	first := sendOne(t, s, dev, 1)
	old := oldSend(1)
	oldAck(old[0]) // an old node's ack does not take last_seq back
	if e := sendOne(t, s, dev, 2); e.Prev != uint64(old[0]) {
		t.Errorf("after an old node stored Seq %d (and acked it) following Seq %d, the next envelope's Prev = %d, want %d",
			old[0], first.Seq, e.Prev, old[0])
	}
	old = oldSend(2)
	if e := sendOne(t, s, dev, 3); e.Prev != uint64(old[1]) {
		t.Errorf("after an old node stored Seqs %d, the next envelope's Prev = %d, want %d", old, e.Prev, old[1])
	}

	// The upgraded node's own writes never call the trigger's function
	// (its sends move last_seq with queue_len, its acks and expiry lower
	// queue_len): with the function made to fail, they all still work.
	if _, err := c.Exec(ctx, `CREATE OR REPLACE FUNCTION devices_last_seq_of_old_nodes() RETURNS trigger
		LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the trigger fired'; END; $$`); err != nil {
		t.Fatal(err)
	}
	other := idOf(0x43)
	register(t, s, "bob", other)
	now := time.Now()
	send := store.Send{Envelopes: []store.Envelope{
		{Device: dev, MessageID: store.MessageID{10}, Created: now, Expires: now.Add(time.Hour)},
		{Device: other, MessageID: store.MessageID{10}, Created: now, Expires: now.Add(time.Hour)},
		{Device: dev, MessageID: store.MessageID{11}, Created: now, Expires: now.Add(-time.Hour)},
		{Device: dev, MessageID: store.MessageID{1}, Created: now, Expires: now.Add(time.Hour)}, // queued: a duplicate
	}}
	if err := s.Enqueue(ctx, send); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if err := s.Ack(ctx, dev, []uint64{first.Seq, send.Envelopes[0].Seq}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if n, err := s.Expire(ctx, now); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1", n, err)
	}
	if e := sendOne(t, s, dev, 12); e.Prev != send.Envelopes[2].Seq {
		t.Errorf("Prev = %d, want %d", e.Prev, send.Envelopes[2].Seq)
	}
}

// sendOne enqueues one envelope for dev with message id {m} and returns
// it as Enqueue left it.
func sendOne(t *testing.T, s store.Store, dev store.DeviceID, m byte) store.Envelope {
	t.Helper()
	send := store.Send{Envelopes: []store.Envelope{{
		Device: dev, MessageID: store.MessageID{m}, SenderUsername: "bob", Body: []byte{1},
		Created: time.Now(), Expires: time.Now().Add(time.Hour),
	}}}
	if err := s.Enqueue(context.Background(), send); err != nil {
		t.Fatal(err)
	}
	return send.Envelopes[0]
}

// idOf is the device id of 16 bytes b.
func idOf(b byte) store.DeviceID {
	var id store.DeviceID
	for i := range id {
		id[i] = b
	}
	return id
}

// msgOf is a message id of 16 bytes b, as a column value.
func msgOf(b byte) []byte { return bytes.Repeat([]byte{b}, 16) }
