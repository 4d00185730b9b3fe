package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
	"github.com/parleyim/parley/internal/store/storetest"
)

// BenchmarkRead measures the reads every relay call makes (docs/performance.md,
// "Relay"): the caller's device (authentication), an account's devices,
// the device ids of a send's two accounts (recipient and sender) and a page
// of a queue (a delivery stream's fetch).
//
//	go test -run '^$' -bench BenchmarkRead -count 6 ./internal/store/sqlite/
func BenchmarkRead(b *testing.B) {
	s, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := storetest.RegisterBenchDevices(b, s)
	ctx := context.Background()
	body := make([]byte, storetest.BenchBodySize)
	now := time.Now()
	if err := s.Enqueue(ctx, store.Send{Envelopes: []store.Envelope{storetest.BenchEnvelope(ids[0], body, now)}}); err != nil {
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
	b.Run("op=device-ids", func(b *testing.B) {
		for b.Loop() {
			if ids, err := s.DeviceIDs(ctx, "user0", "user1"); err != nil || len(ids[0]) == 0 || len(ids[1]) == 0 {
				b.Fatal(ids, err)
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
