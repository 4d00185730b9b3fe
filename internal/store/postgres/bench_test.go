package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
	"github.com/parleyim/parley/internal/store/storetest"
)

// BenchmarkEnqueue measures group commit against a floor
// (storetest.BenchmarkEnqueue), on the server PARLEY_TEST_POSTGRES_DSN
// names (not through scripts/test, whose -race would measure the race
// detector), with fsync on:
//
//	PARLEY_TEST_POSTGRES_DSN=... go test -run '^$' -bench BenchmarkEnqueue -benchtime 20000x ./internal/store/postgres/
//
// The floor inserts the same rows into the same schema on one connection,
// BenchFloorBatch rows per transaction in one multi-row INSERT, with no
// store code: no device locks, no duplicate or queue-length checks, Seqs
// from a counter in the benchmark.
func BenchmarkEnqueue(b *testing.B) {
	storetest.BenchmarkEnqueue(b, storetest.EnqueueBench{
		Open: func(b *testing.B) (store.Store, string) {
			dsn := pgtest.NewDatabase(b)
			return mustOpen(b, dsn), dsn
		},
		Floor: postgresFloor,
		Stats: func(s store.Store) (int64, int64) { return postgres.CommitStats(s.(*postgres.Store)) },
	})
}

func postgresFloor(b *testing.B, dsn string) func([]store.Envelope) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	var seq int64
	return func(batch []store.Envelope) error {
		var (
			device, messageID, senderDevice, bodies [][]byte
			seqs, created, expires                  []int64
			senderUsername                          []string
		)
		for _, e := range batch {
			seq++
			device = append(device, e.Device[:])
			seqs = append(seqs, seq)
			messageID = append(messageID, e.MessageID[:])
			senderUsername = append(senderUsername, e.SenderUsername)
			senderDevice = append(senderDevice, e.SenderDevice[:])
			bodies = append(bodies, e.Body)
			created = append(created, e.Created.UnixMicro())
			expires = append(expires, e.Expires.UnixMicro())
		}
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO envelopes
				(device, seq, message_id, sender_username, sender_device, body, created, expires)
				SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::text[], $5::bytea[], $6::bytea[], $7::bigint[], $8::bigint[])`,
				device, seqs, messageID, senderUsername, senderDevice, bodies, created, expires)
			return err
		})
	}
}
