package provision

import (
	"testing"
	"time"

	"github.com/parleyim/parley/internal/primitives"
)

// BenchmarkHistoryTransfer seals and opens a whole transfer of 10,000
// history messages with ~200-byte bodies (the issue's "history transfer of
// 10,000 messages"), batched by FitHistory, both sides in one goroutine:
// account frame (with its device-list verification), history frames, end.
// Beside it, in the same run, the floor: AES-256-GCM sealing and opening
// the same history payloads with no framing, parsing or HPKE. Compare the
// two MB/s figures (both count the encoded history payload bytes).
func BenchmarkHistoryTransfer(b *testing.B) {
	const n, body = 10000, 200
	f := newFixture(b, 0, n, body)
	var batches [][]byte
	payloadBytes := 0
	for ms := f.history; len(ms) > 0; {
		k := FitHistory(ms)
		p, err := marshalHistory(ms[:k])
		if err != nil {
			b.Fatal(err)
		}
		batches = append(batches, p)
		payloadBytes += len(p)
		ms = ms[k:]
	}
	report := func(b *testing.B, start time.Time) {
		secs := time.Since(start).Seconds()
		b.ReportMetric(float64(n)*float64(b.N)/secs, "msgs/s")
	}

	b.Run("transfer", func(b *testing.B) {
		b.SetBytes(int64(payloadBytes))
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			frames := f.frames(b, NewSender(f.offer))
			r := NewReceiver(f.secret, "alice")
			got := 0
			for _, fr := range frames {
				v, err := r.Open(fr)
				if err != nil {
					b.Fatal(err)
				}
				if ms, ok := v.([]HistoryMessage); ok {
					got += len(ms)
				}
			}
			if err := r.Finish(); err != nil || got != n {
				b.Fatal(got, err)
			}
		}
		report(b, start)
		b.ReportMetric(float64(len(batches)+2), "frames")
	})

	b.Run("aes-gcm-floor", func(b *testing.B) {
		var key [primitives.AEADKeySize]byte
		primitives.Random(key[:])
		b.SetBytes(int64(payloadBytes))
		b.ReportAllocs()
		var ct, pt []byte
		start := time.Now()
		for b.Loop() {
			for _, p := range batches {
				// A benchmark floor only: one key, zero nonce, reused.
				ct = primitives.SealSingleUse(&key, ct[:0], p, nil)
				var err error
				if pt, err = primitives.OpenSingleUse(&key, pt[:0], ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b, start)
	})
}
