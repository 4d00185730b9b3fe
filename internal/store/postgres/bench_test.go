package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
)

// Benchmark shape, as in the SQLite engine's benchmark: a send carries one
// envelope for the recipient's device and one for the sender's other
// device (DESIGN §4, fan-out), with a body of a typical padded size.
const (
	benchSenders          = 64  // concurrent Enqueue callers
	benchDevices          = 64  // recipient devices
	benchEnvelopesPerSend = 2   // envelopes per send
	benchBodySize         = 512 // bytes of ciphertext per envelope
	benchFloorBatch       = 64  // rows per transaction in the floor
)

// Rates measured by the last run of each sub-benchmark, for the ratio.
var benchRate struct {
	sync.Mutex
	store, floor float64
}

// BenchmarkEnqueue measures group commit against a floor, on the server
// PARLEY_TEST_POSTGRES_DSN names (not through scripts/test, whose -race
// would measure the race detector), with fsync on:
//
//	PARLEY_TEST_POSTGRES_DSN=... go test -run '^$' -bench BenchmarkEnqueue -benchtime 20000x ./internal/store/postgres/
//
// BenchmarkEnqueue/store: benchSenders goroutines call Enqueue through the
// store, each send benchEnvelopesPerSend envelopes; b.N counts sends.
//
// BenchmarkEnqueue/floor: the same rows inserted into the same schema by
// one connection, benchFloorBatch rows per transaction in one multi-row
// INSERT, with no store code: no device locks, no duplicate or queue-length
// checks, Seqs from a counter in the benchmark. What this server and disk
// cost for the rows alone.
//
// BenchmarkEnqueue/ratio reports store/floor from the two runs above; the
// goal is at least 0.5.
func BenchmarkEnqueue(b *testing.B) {
	b.Run("store", benchmarkEnqueueStore)
	b.Run("floor", benchmarkEnqueueFloor)
	b.Run("ratio", func(b *testing.B) {
		benchRate.Lock()
		defer benchRate.Unlock()
		if benchRate.store == 0 || benchRate.floor == 0 {
			b.Skip("run store and floor first")
		}
		for b.Loop() {
		}
		b.ReportMetric(benchRate.store/benchRate.floor, "store/floor")
		b.Logf("store %.0f envelopes/s, floor %.0f envelopes/s, ratio %.2f",
			benchRate.store, benchRate.floor, benchRate.store/benchRate.floor)
	})
}

// benchSetup creates a database with benchDevices registered devices and
// returns its DSN and the device ids.
func benchSetup(b *testing.B) (string, []store.DeviceID) {
	b.Helper()
	dsn := pgtest.NewDatabase(b)
	s := mustOpen(b, dsn)
	defer s.Close()
	var ids []store.DeviceID
	for i := range benchDevices {
		var id store.DeviceID
		primitives.Random(id[:])
		ids = append(ids, id)
		register(b, s, fmt.Sprint("user", i), id)
	}
	return dsn, ids
}

func benchEnvelope(dev store.DeviceID, body []byte, now time.Time) store.Envelope {
	e := store.Envelope{
		Device:         dev,
		SenderUsername: "sender",
		SenderDevice:   store.DeviceID{1},
		Body:           body,
		Created:        now,
		Expires:        now.Add(24 * time.Hour),
	}
	primitives.Random(e.MessageID[:])
	return e
}

func benchmarkEnqueueStore(b *testing.B) {
	dsn, ids := benchSetup(b)
	s := mustOpen(b, dsn)
	defer s.Close()
	body := make([]byte, benchBodySize)
	primitives.Random(body)
	ctx := context.Background()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	commits0, sends0 := postgres.CommitStats(s)
	b.ResetTimer()
	start := time.Now()
	for g := range benchSenders {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				now := time.Now()
				send := store.Send{MaxQueue: 1 << 30}
				for k := range benchEnvelopesPerSend {
					dev := ids[(int(i)*benchEnvelopesPerSend+k+g)%len(ids)]
					send.Envelopes = append(send.Envelopes, benchEnvelope(dev, body, now))
				}
				if err := s.Enqueue(ctx, send); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	rate := float64(b.N*benchEnvelopesPerSend) / elapsed.Seconds()
	b.ReportMetric(rate, "envelopes/s")
	if commits, sends := postgres.CommitStats(s); commits > commits0 {
		b.ReportMetric(float64(sends-sends0)/float64(commits-commits0), "sends/commit")
	}
	benchRate.Lock()
	benchRate.store = rate
	benchRate.Unlock()
}

func benchmarkEnqueueFloor(b *testing.B) {
	dsn, ids := benchSetup(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	body := make([]byte, benchBodySize)
	primitives.Random(body)

	rows := b.N * benchEnvelopesPerSend
	var seq int64
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < rows; {
		var (
			device, messageID, senderDevice, bodies [][]byte
			seqs, created, expires                  []int64
			senderUsername                          []string
		)
		for k := 0; k < benchFloorBatch && done < rows; k++ {
			e := benchEnvelope(ids[done%len(ids)], body, time.Now())
			seq++
			device = append(device, e.Device[:])
			seqs = append(seqs, seq)
			messageID = append(messageID, e.MessageID[:])
			senderUsername = append(senderUsername, e.SenderUsername)
			senderDevice = append(senderDevice, e.SenderDevice[:])
			bodies = append(bodies, e.Body)
			created = append(created, e.Created.UnixMicro())
			expires = append(expires, e.Expires.UnixMicro())
			done++
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO envelopes
				(device, seq, message_id, sender_username, sender_device, body, created, expires)
				SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::text[], $5::bytea[], $6::bytea[], $7::bigint[], $8::bigint[])`,
				device, seqs, messageID, senderUsername, senderDevice, bodies, created, expires)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	rate := float64(rows) / elapsed.Seconds()
	b.ReportMetric(rate, "envelopes/s")
	benchRate.Lock()
	benchRate.floor = rate
	benchRate.Unlock()
}
