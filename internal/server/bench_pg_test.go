package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
)

// BenchmarkRelayPostgres is BenchmarkRelay on PostgreSQL, beside a raw
// batched-insert floor measured in the same run (docs/performance.md,
// "Relay on PostgreSQL"), on the server PARLEY_TEST_POSTGRES_DSN names
// (not through scripts/test, whose -race would measure the race
// detector):
//
//	PARLEY_TEST_POSTGRES_DSN=... go test -run '^$' -bench BenchmarkRelayPostgres -benchmem -benchtime 2s -count 6 ./internal/server
//
// floor: rows of the size of an e2e envelope inserted into a fresh
// database with the server's schema (internal/store/postgres's
// migrations), relayFloorBatch rows per transaction in one multi-row
// INSERT, on one connection, Seqs from a counter: no server, no store
// code, no network but the database's.
//
// e2e/pairs=N: BenchmarkRelay's e2e with the server on a fresh PostgreSQL
// database (group commit, the default pool), fsync as the server is
// configured; e2e/floor against the median floor of the run.
func BenchmarkRelayPostgres(b *testing.B) {
	b.Run("floor", benchmarkRelayFloorPostgres)
	for _, pairs := range relayPairs {
		b.Run(fmt.Sprintf("e2e/pairs=%d", pairs), func(b *testing.B) {
			r := runRelay(b, pairs, 0, openPostgres)
			if floor := relayResults.median("pg-floor"); floor > 0 {
				b.ReportMetric(r.rate/floor, "e2e/floor")
			}
		})
	}
}

func openPostgres(tb testing.TB) store.Store {
	st, err := postgres.Open(context.Background(), pgtest.NewDatabase(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func benchmarkRelayFloorPostgres(b *testing.B) {
	dsn := pgtest.NewDatabase(b)
	ctx := context.Background()
	// The store creates the schema and the devices the rows belong to;
	// then it is closed and the rows go in with plain SQL.
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	devs := make([]store.DeviceID, relayFloorDevices)
	for i := range devs {
		primitives.Random(devs[i][:])
		name := fmt.Sprint("floor", i)
		if err := st.CreateAccount(ctx, store.NewAccount{
			Account: store.Account{Username: name, AccountKey: []byte("k")},
			List:    store.DeviceList{Username: name, Version: 1, Signed: []byte("l")},
			Devices: []store.Device{{ID: devs[i], Username: name, Public: []byte("p")}},
		}); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	body := make([]byte, relayEnvelopeSize(b))
	primitives.Random(body)
	sender := store.DeviceID{1}

	var seq int64
	insert := func(n int) {
		var (
			device, messageID, senderDevice, bodies [][]byte
			seqs, created, expires                  []int64
			senderUsername                          []string
		)
		now := time.Now()
		for range n {
			seq++
			var msg store.MessageID
			primitives.Random(msg[:])
			device = append(device, devs[seq%int64(len(devs))][:])
			seqs = append(seqs, seq)
			messageID = append(messageID, msg[:])
			senderUsername = append(senderUsername, "sender")
			senderDevice = append(senderDevice, sender[:])
			bodies = append(bodies, body)
			created = append(created, now.UnixMicro())
			expires = append(expires, now.Add(24*time.Hour).UnixMicro())
		}
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO envelopes
				(device, seq, message_id, sender_username, sender_device, body, created, expires)
				SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::text[], $5::bytea[], $6::bytea[], $7::bigint[], $8::bigint[])`,
				device, seqs, messageID, senderUsername, senderDevice, bodies, created, expires)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	rows := 0
	start := time.Now()
	for b.Loop() {
		rows++
		if rows%relayFloorBatch == 0 {
			insert(relayFloorBatch)
		}
	}
	if n := rows % relayFloorBatch; n > 0 {
		insert(n)
	}
	r := float64(rows) / time.Since(start).Seconds()
	b.ReportMetric(r, "envelopes/s")
	relayResults.record("pg-floor", r)
}
