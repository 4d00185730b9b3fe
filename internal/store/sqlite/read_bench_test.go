package sqlite_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// BenchmarkRead measures the reads every relay call makes (docs/performance.md,
// "Relay"): the caller's device (authentication), an account's devices (a
// send's recipients) and a page of a queue (a delivery stream's fetch).
//
//	go test -run '^$' -bench BenchmarkRead -count 6 ./internal/store/sqlite/
func BenchmarkRead(b *testing.B) {
	path, ids := benchSetup(b)
	s, err := sqlite.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	body := make([]byte, benchBodySize)
	rand.Read(body)
	now := time.Now()
	if err := s.Enqueue(ctx, store.Send{Envelopes: []store.Envelope{benchEnvelope(ids[0], body, now)}}); err != nil {
		b.Fatal(err)
	}
	b.Run("op=device", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Device(ctx, ids[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=devices", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Devices(ctx, "user0"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=fetch", func(b *testing.B) {
		for b.Loop() {
			if envs, err := s.Fetch(ctx, ids[0], 0, 256); err != nil || len(envs) != 1 {
				b.Fatal(len(envs), err)
			}
		}
	})
}
