package mem_test

import (
	"testing"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/bus/bustest"
	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/store"
)

// TestConformance runs the suite with the same bus standing for two nodes,
// so the cross-node subtests exercise one hub from both sides.
func TestConformance(t *testing.T) {
	bustest.Run(t, func(*testing.T) []bus.Bus { b := mem.New(); return []bus.Bus{b, b} })
}

// BenchmarkNotify notifies 10,000 subscribed devices in turn, as a relay
// fanning out sends would. Subscribers never read, so after the first
// round every Notify takes the coalescing path. The goal is 0 allocs/op.
func BenchmarkNotify(b *testing.B) {
	const devices = 10_000
	bs := mem.New()
	defer bs.Close()
	ids := make([]store.DeviceID, devices)
	for i := range ids {
		ids[i] = store.DeviceID{byte(i), byte(i >> 8), 0xbe, 0xef}
		_, cancel := bs.Subscribe(ids[i])
		defer cancel()
	}
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := bs.Notify(ctx, ids[i%devices], 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestNotifyDoesNotAllocate guards the benchmark's goal: Notify runs once
// per recipient device of every send, so it must not make garbage.
func TestNotifyDoesNotAllocate(t *testing.T) {
	b := mem.New()
	defer b.Close()
	id := store.DeviceID{1}
	_, cancel := b.Subscribe(id)
	defer cancel()
	ctx := t.Context()
	if n := testing.AllocsPerRun(100, func() { b.Notify(ctx, id, 0) }); n != 0 {
		t.Errorf("Notify: %v allocs per call, want 0", n)
	}
}

// BenchmarkNotifyParallel is BenchmarkNotify from several senders at once,
// the case the read lock in Notify is for.
func BenchmarkNotifyParallel(b *testing.B) {
	const devices = 10_000
	bs := mem.New()
	defer bs.Close()
	ids := make([]store.DeviceID, devices)
	for i := range ids {
		ids[i] = store.DeviceID{byte(i), byte(i >> 8), 0xbe, 0xef}
		_, cancel := bs.Subscribe(ids[i])
		defer cancel()
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := bs.Notify(ctx, ids[i%devices], 0); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
