package server

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
)

type timingStore struct {
	store.Store
	mu sync.Mutex
	d  map[string][]time.Duration
}

func (t *timingStore) rec(name string, start time.Time) {
	d := time.Since(start)
	t.mu.Lock()
	if t.d == nil {
		t.d = map[string][]time.Duration{}
	}
	t.d[name] = append(t.d[name], d)
	t.mu.Unlock()
}
func (t *timingStore) Enqueue(ctx context.Context, s store.Send) error {
	defer t.rec("Enqueue", time.Now())
	return t.Store.Enqueue(ctx, s)
}
func (t *timingStore) Fetch(ctx context.Context, id store.DeviceID, after uint64, limit int) ([]store.Envelope, error) {
	defer t.rec("Fetch", time.Now())
	return t.Store.Fetch(ctx, id, after, limit)
}
func (t *timingStore) Ack(ctx context.Context, id store.DeviceID, seqs []uint64) error {
	defer t.rec("Ack", time.Now())
	return t.Store.Ack(ctx, id, seqs)
}
func (t *timingStore) Devices(ctx context.Context, u string) ([]store.Device, error) {
	defer t.rec("Devices", time.Now())
	return t.Store.Devices(ctx, u)
}
func (t *timingStore) Device(ctx context.Context, id store.DeviceID) (*store.Device, error) {
	defer t.rec("Device", time.Now())
	return t.Store.Device(ctx, id)
}
func (t *timingStore) dump() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.d {
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		fmt.Fprintf(os.Stderr, "%-8s n=%d p50=%v p90=%v p99=%v\n", k, len(v), v[len(v)/2], v[len(v)*9/10], v[len(v)*99/100])
	}
	t.d = nil
}

func init() {
	diagHook = func() {
		bs := sqlite.DiagBatches
		sqlite.DiagBatches = nil
		if len(bs) == 0 {
			return
		}
		var ops, dur int64
		sizes := []int64{}
		durs := []int64{}
		for _, b := range bs {
			ops += b[0]
			dur += b[1]
			sizes = append(sizes, b[0])
			durs = append(durs, b[1])
		}
		sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
		sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
		fmt.Fprintf(os.Stderr, "batches=%d ops=%d mean=%.1f p50size=%d p90size=%d busy=%v p50dur=%v p90dur=%v p99dur=%v\n", len(bs), ops, float64(ops)/float64(len(bs)), sizes[len(sizes)/2], sizes[len(sizes)*9/10], time.Duration(dur), time.Duration(durs[len(durs)/2]), time.Duration(durs[len(durs)*9/10]), time.Duration(durs[len(durs)*99/100]))
	}
}
