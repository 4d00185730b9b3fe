package sqlite_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// Benchmark shape. A send carries one envelope for the recipient's device
// and one for the sender's other device (DESIGN §4, fan-out), with a body
// of a typical padded size.
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

// BenchmarkEnqueue measures group commit against a floor.
//
//	go test -run '^$' -bench BenchmarkEnqueue -benchtime 20000x ./internal/store/sqlite/
//
// BenchmarkEnqueue/store: benchSenders goroutines call Enqueue through the
// store, each send benchEnvelopesPerSend envelopes; b.N counts sends.
//
// BenchmarkEnqueue/floor: the same rows inserted into the same schema (same
// pragmas, same INSERT, same triggers and indexes) by one goroutine,
// benchFloorBatch rows per transaction, with no store code: what this
// file system and SQLite cost without the store's checks, savepoints and
// goroutine hand-offs.
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
// returns its path and the device ids.
func benchSetup(b *testing.B) (string, []store.DeviceID) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.db")
	s, err := sqlite.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var ids []store.DeviceID
	for i := range benchDevices {
		var id store.DeviceID
		rand.Read(id[:])
		ids = append(ids, id)
		name := fmt.Sprint("user", i)
		err := s.CreateAccount(context.Background(), store.NewAccount{
			Account: store.Account{Username: name, AccountKey: []byte("k")},
			List:    store.DeviceList{Username: name, Version: 1, Signed: []byte("l")},
			Devices: []store.Device{{ID: id, Username: name, Public: []byte("p")}},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return path, ids
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
	rand.Read(e.MessageID[:])
	return e
}

func benchmarkEnqueueStore(b *testing.B) {
	path, ids := benchSetup(b)
	s, err := sqlite.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := make([]byte, benchBodySize)
	rand.Read(body)
	ctx := context.Background()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
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
	benchRate.Lock()
	benchRate.store = rate
	benchRate.Unlock()
}

func benchmarkEnqueueFloor(b *testing.B) {
	path, ids := benchSetup(b)
	db, err := sql.Open("sqlite", "file:"+path+
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=cache_size(-16384)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ins, err := conn.PrepareContext(ctx, `INSERT INTO envelopes
		(device, message_id, sender_username, sender_device, body, created, expires)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device, message_id) DO NOTHING`)
	if err != nil {
		b.Fatal(err)
	}
	defer ins.Close()
	body := make([]byte, benchBodySize)
	rand.Read(body)

	rows := b.N * benchEnvelopesPerSend
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < rows; {
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			b.Fatal(err)
		}
		for k := 0; k < benchFloorBatch && done < rows; k++ {
			now := time.Now()
			e := benchEnvelope(ids[done%len(ids)], body, now)
			if _, err := ins.ExecContext(ctx, e.Device[:], e.MessageID[:], e.SenderUsername, e.SenderDevice[:],
				e.Body, e.Created.UnixMicro(), e.Expires.UnixMicro()); err != nil {
				b.Fatal(err)
			}
			done++
		}
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
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
