package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

// The shape of BenchmarkEnqueue. A send carries one envelope for the
// recipient's device and one for the sender's other device (DESIGN §4,
// fan-out), with a body of a typical padded size.
const (
	BenchSenders          = 64  // concurrent Enqueue callers
	BenchDevices          = 64  // recipient devices
	BenchEnvelopesPerSend = 2   // envelopes per send
	BenchBodySize         = 512 // bytes of ciphertext per envelope
	BenchFloorBatch       = 64  // rows per transaction in the floor
)

// EnqueueBench is one engine's part of BenchmarkEnqueue.
type EnqueueBench struct {
	// Open returns a store on a fresh, empty location and the location
	// (a file path, a DSN) for Floor.
	Open func(b *testing.B) (store.Store, string)
	// Floor opens a plain connection to location, untimed, and returns
	// the timed part: insert the envelopes (at most BenchFloorBatch) in
	// one transaction, with the engine's own SQL and no store code — what
	// the database and disk cost for the rows alone.
	Floor func(b *testing.B, location string) (insert func(batch []store.Envelope) error)
	// Stats, if set, returns the engine's group-commit counters, to report
	// sends per commit.
	Stats func(s store.Store) (commits, sends int64)
}

// BenchmarkEnqueue measures group commit against a floor, each engine's
// test file calling it with its EnqueueBench:
//
//   - store: BenchSenders goroutines call Enqueue, each send
//     BenchEnvelopesPerSend envelopes; b.N counts sends;
//   - floor: the same rows, BenchFloorBatch per transaction, through
//     EnqueueBench.Floor;
//   - ratio: store/floor from the two runs above; the goal is at least 0.5.
func BenchmarkEnqueue(b *testing.B, e EnqueueBench) {
	var mu sync.Mutex
	var storeRate, floorRate float64
	b.Run("store", func(b *testing.B) {
		s, _ := e.Open(b)
		defer s.Close()
		ids := RegisterBenchDevices(b, s)
		body := benchBody()
		ctx := context.Background()
		var (
			next atomic.Int64
			wg   sync.WaitGroup
		)
		var commits0, sends0 int64
		if e.Stats != nil {
			commits0, sends0 = e.Stats(s)
		}
		b.ResetTimer()
		start := time.Now()
		for g := range BenchSenders {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(b.N) {
						return
					}
					now := time.Now()
					send := store.Send{MaxQueue: 1 << 30}
					for k := range BenchEnvelopesPerSend {
						dev := ids[(int(i)*BenchEnvelopesPerSend+k+g)%len(ids)]
						send.Envelopes = append(send.Envelopes, BenchEnvelope(dev, body, now))
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
		rate := float64(b.N*BenchEnvelopesPerSend) / elapsed.Seconds()
		b.ReportMetric(rate, "envelopes/s")
		if e.Stats != nil {
			if commits, sends := e.Stats(s); commits > commits0 {
				b.ReportMetric(float64(sends-sends0)/float64(commits-commits0), "sends/commit")
			}
		}
		mu.Lock()
		storeRate = rate
		mu.Unlock()
	})
	b.Run("floor", func(b *testing.B) {
		s, location := e.Open(b)
		ids := RegisterBenchDevices(b, s)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		insert := e.Floor(b, location)
		body := benchBody()
		rows := b.N * BenchEnvelopesPerSend
		batch := make([]store.Envelope, 0, BenchFloorBatch)
		b.ResetTimer()
		start := time.Now()
		for done := 0; done < rows; {
			batch = batch[:0]
			for ; len(batch) < BenchFloorBatch && done < rows; done++ {
				batch = append(batch, BenchEnvelope(ids[done%len(ids)], body, time.Now()))
			}
			if err := insert(batch); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		rate := float64(rows) / elapsed.Seconds()
		b.ReportMetric(rate, "envelopes/s")
		mu.Lock()
		floorRate = rate
		mu.Unlock()
	})
	b.Run("ratio", func(b *testing.B) {
		mu.Lock()
		defer mu.Unlock()
		if storeRate == 0 || floorRate == 0 {
			b.Skip("run store and floor first")
		}
		for b.Loop() {
		}
		b.ReportMetric(storeRate/floorRate, "store/floor")
		b.Logf("store %.0f envelopes/s, floor %.0f envelopes/s, ratio %.2f", storeRate, floorRate, storeRate/floorRate)
	})
}

// RegisterBenchDevices registers BenchDevices accounts of one device each
// and returns the device ids.
func RegisterBenchDevices(b *testing.B, s store.Store) []store.DeviceID {
	b.Helper()
	ids := make([]store.DeviceID, 0, BenchDevices)
	for i := range BenchDevices {
		var id store.DeviceID
		primitives.Random(id[:])
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
	return ids
}

// BenchEnvelope is one benchmark envelope with a fresh message id.
func BenchEnvelope(dev store.DeviceID, body []byte, now time.Time) store.Envelope {
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

func benchBody() []byte {
	body := make([]byte, BenchBodySize)
	primitives.Random(body)
	return body
}
