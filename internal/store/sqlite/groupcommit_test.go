package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// TestGroupCommit releases many concurrent sends at once and checks that
// they shared transactions: fewer commits than sends, each send stored,
// and the Prevs Enqueue reported chain the device's Seqs although several
// sends to it ran in one transaction.
func TestGroupCommit(t *testing.T) {
	const (
		senders  = 64
		perSend  = 5
		maxBatch = 16
	)
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "group.db"), sqlite.WithMaxBatch(maxBatch))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	dev := store.DeviceID{7}
	if err := s.CreateAccount(ctx, store.NewAccount{
		Account: store.Account{Username: "bob"},
		List:    store.DeviceList{Username: "bob", Version: 1},
		Devices: []store.Device{{ID: dev, Username: "bob"}},
	}); err != nil {
		t.Fatal(err)
	}
	commits0, ops0 := sqlite.CommitStats(s)
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		mu       sync.Mutex
		reported = map[uint64]uint64{} // Seq -> Prev
	)
	now := time.Now()
	for g := range senders {
		wg.Go(func() {
			<-start
			for i := range perSend {
				e := store.Envelope{Device: dev, Body: fmt.Appendf(nil, "%d/%d", g, i), Created: now, Expires: now.Add(time.Hour)}
				e.MessageID[0], e.MessageID[1] = byte(g), byte(i)
				send := store.Send{Envelopes: []store.Envelope{e}, MaxQueue: 1000}
				if err := s.Enqueue(ctx, send); err != nil {
					t.Errorf("Enqueue: %v", err)
					continue
				}
				mu.Lock()
				reported[send.Envelopes[0].Seq] = send.Envelopes[0].Prev
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	commits, ops := sqlite.CommitStats(s)
	commits, ops = commits-commits0, ops-ops0
	t.Logf("%d sends in %d commits (%.1f per commit, limit %d)", ops, commits, float64(ops)/float64(commits), maxBatch)
	if ops != senders*perSend {
		t.Errorf("%d writes committed, want %d", ops, senders*perSend)
	}
	if commits >= ops {
		t.Errorf("%d commits for %d concurrent sends: no batching", commits, ops)
	}
	if least := (ops + maxBatch - 1) / maxBatch; commits < least {
		t.Errorf("%d commits for %d sends: batches exceed the limit of %d", commits, ops, maxBatch)
	}
	if n, err := s.QueueLength(ctx, dev); err != nil || n != senders*perSend {
		t.Errorf("QueueLength = %d, %v; want %d", n, err, senders*perSend)
	}
	envs, err := s.Fetch(ctx, dev, 0, sqlite.MaxFetch)
	if err != nil {
		t.Fatal(err)
	}
	if len(reported) != len(envs) {
		t.Errorf("%d Seqs reported, %d envelopes stored", len(reported), len(envs))
	}
	for i, e := range envs {
		var before uint64
		if i > 0 {
			before = envs[i-1].Seq
		}
		if prev, ok := reported[e.Seq]; !ok || prev != before {
			t.Errorf("Seq %d reported with Prev %d (reported: %v), want %d", e.Seq, prev, ok, before)
		}
	}
}
