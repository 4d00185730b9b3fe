package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
)

// register creates an account named name with one device per id.
func register(t testing.TB, s store.Store, name string, ids ...store.DeviceID) {
	t.Helper()
	a := store.NewAccount{
		Account: store.Account{Username: name, AccountKey: []byte("k")},
		List:    store.DeviceList{Username: name, Version: 1, Signed: []byte("l")},
	}
	for _, id := range ids {
		a.Devices = append(a.Devices, store.Device{ID: id, Username: name, Public: []byte("p")})
	}
	if err := s.CreateAccount(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommit releases many concurrent sends at once and checks that
// they shared transactions: fewer commits than sends, each send stored,
// in one Seq order per device, with Prevs that chain each device's Seqs
// although several sends to it ran in one transaction.
func TestGroupCommit(t *testing.T) {
	const (
		senders  = 64
		perSend  = 5
		maxBatch = 16
	)
	s := mustOpen(t, pgtest.NewDatabase(t), postgres.WithMaxBatch(maxBatch))
	defer s.Close()
	ctx := context.Background()
	devs := []store.DeviceID{{7}, {8}}
	register(t, s, "bob", devs...)
	commits0, sends0 := postgres.CommitStats(s)
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		reported = newReports(devs)
	)
	now := time.Now()
	for g := range senders {
		wg.Go(func() {
			<-start
			for i := range perSend {
				var send store.Send
				send.MaxQueue = 1000
				for _, dev := range devs {
					e := store.Envelope{Device: dev, Body: fmt.Appendf(nil, "%d/%d", g, i), Created: now, Expires: now.Add(time.Hour)}
					e.MessageID[0], e.MessageID[1] = byte(g), byte(i)
					send.Envelopes = append(send.Envelopes, e)
				}
				if err := s.Enqueue(ctx, send); err != nil {
					t.Errorf("Enqueue: %v", err)
					continue
				}
				reported.add(send)
			}
		})
	}
	close(start)
	wg.Wait()
	commits, sends := postgres.CommitStats(s)
	commits, sends = commits-commits0, sends-sends0
	t.Logf("%d sends in %d commits (%.1f per commit, limit %d)", sends, commits, float64(sends)/float64(commits), maxBatch)
	if sends != senders*perSend {
		t.Errorf("%d sends committed, want %d", sends, senders*perSend)
	}
	if commits >= sends {
		t.Errorf("%d commits for %d concurrent sends: no group commit", commits, sends)
	}
	for _, dev := range devs {
		envs, err := s.Fetch(ctx, dev, 0, postgres.MaxFetch)
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) != senders*perSend {
			t.Errorf("device %x holds %d envelopes, want %d", dev[:1], len(envs), senders*perSend)
		}
		reported.check(t, dev, envs)
		// Both envelopes of a send went into one transaction, so the two
		// queues hold the sends in the same order.
		if dev == devs[1] {
			first, _ := s.Fetch(ctx, devs[0], 0, postgres.MaxFetch)
			for i := range min(len(first), len(envs)) {
				if first[i].MessageID != envs[i].MessageID {
					t.Fatalf("envelope %d: the two devices' queues disagree on the order of sends", i)
				}
			}
		}
	}
}

// TestEnqueueCallerGivesUp: callers whose context ends while their send
// waits get the context's error (their send may or may not be stored, like
// any call whose answer is lost); the other sends of the batch are stored,
// and queue_len stays exact.
func TestEnqueueCallerGivesUp(t *testing.T) {
	const senders = 64
	s := mustOpen(t, pgtest.NewDatabase(t))
	defer s.Close()
	dev := store.DeviceID{9}
	register(t, s, "carol", dev)
	now := time.Now()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ok    []store.MessageID
		start = make(chan struct{})
	)
	for i := range senders {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e := store.Envelope{Device: dev, Created: now, Expires: now.Add(time.Hour)}
			e.MessageID[0] = byte(i)
			<-start
			if i%2 == 0 {
				time.AfterFunc(time.Duration(i)*50*time.Microsecond, cancel)
			}
			switch err := s.Enqueue(ctx, store.Send{Envelopes: []store.Envelope{e}, MaxQueue: 1000}); {
			case err == nil:
				mu.Lock()
				ok = append(ok, e.MessageID)
				mu.Unlock()
			case i%2 == 1 || !errors.Is(err, context.Canceled):
				t.Errorf("Enqueue %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	ctx := context.Background()
	envs, err := s.Fetch(ctx, dev, 0, postgres.MaxFetch)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[store.MessageID]bool{}
	for _, e := range envs {
		stored[e.MessageID] = true
	}
	for _, m := range ok {
		if !stored[m] {
			t.Errorf("a send whose Enqueue returned nil is not stored")
		}
	}
	if n, err := s.QueueLength(ctx, dev); err != nil || n != len(envs) {
		t.Errorf("QueueLength = %d, %v; want %d, the envelopes stored", n, err, len(envs))
	}
	t.Logf("%d of %d sends reported stored, %d stored", len(ok), senders, len(envs))
}

// TestNodesShareQueues runs two stores (two parleyd nodes) on one database,
// sending to the same devices at once: Seqs stay unique and in commit
// order per device, each node reads what the other wrote, and the Prevs
// the two nodes report chain each device's Seqs with no gap (a node's
// Prev never skips an envelope the other node stored).
func TestNodesShareQueues(t *testing.T) {
	const perNode = 200
	dsn := pgtest.NewDatabase(t)
	a, b := mustOpen(t, dsn), mustOpen(t, dsn)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	devs := []store.DeviceID{{1}, {2}, {3}}
	register(t, a, "dave", devs...)
	now := time.Now()
	var (
		wg       sync.WaitGroup
		reported = newReports(devs)
	)
	for n, s := range []store.Store{a, b} {
		for g := range 8 {
			wg.Go(func() {
				for i := range perNode / 8 {
					var send store.Send
					for k, dev := range devs {
						e := store.Envelope{Device: dev, Created: now, Expires: now.Add(time.Hour)}
						e.MessageID[0], e.MessageID[1], e.MessageID[2], e.MessageID[3] = byte(n), byte(g), byte(i), byte(k)
						send.Envelopes = append(send.Envelopes, e)
					}
					if err := s.Enqueue(ctx, send); err != nil {
						t.Errorf("Enqueue: %v", err)
						continue
					}
					reported.add(send)
				}
			})
		}
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for _, dev := range devs {
		envs, err := b.Fetch(ctx, dev, 0, postgres.MaxFetch)
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) != 2*perNode {
			t.Errorf("device %x holds %d envelopes, want %d", dev[:1], len(envs), 2*perNode)
		}
		for i, e := range envs {
			if seen[e.Seq] {
				t.Errorf("Seq %d used twice", e.Seq)
			}
			seen[e.Seq] = true
			if i > 0 && e.Seq <= envs[i-1].Seq {
				t.Errorf("Seq %d after %d", e.Seq, envs[i-1].Seq)
			}
		}
		reported.check(t, dev, envs)
		if n, err := a.QueueLength(ctx, dev); err != nil || n != 2*perNode {
			t.Errorf("QueueLength = %d, %v; want %d", n, err, 2*perNode)
		}
	}
}

// reports collects the Seq and Prev that Enqueue reported, per device.
type reports struct {
	mu   sync.Mutex
	prev map[store.DeviceID]map[uint64]uint64 // Seq -> Prev
}

func newReports(devs []store.DeviceID) *reports {
	r := &reports{prev: map[store.DeviceID]map[uint64]uint64{}}
	for _, d := range devs {
		r.prev[d] = map[uint64]uint64{}
	}
	return r
}

// add records the envelopes of a send whose Enqueue returned nil.
func (r *reports) add(send store.Send) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range send.Envelopes {
		r.prev[e.Device][e.Seq] = e.Prev
	}
}

// check compares what was reported for dev with its whole queue, envs
// (Fetch from 0, nothing acked): every envelope was reported, with the Seq
// before it in the queue as its Prev.
func (r *reports) check(t *testing.T, dev store.DeviceID, envs []store.Envelope) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.prev[dev]) != len(envs) {
		t.Errorf("device %x: %d Seqs reported, %d stored", dev[:1], len(r.prev[dev]), len(envs))
	}
	var before uint64
	for _, e := range envs {
		if prev, ok := r.prev[dev][e.Seq]; !ok || prev != before {
			t.Errorf("device %x: Seq %d reported with Prev %d (reported: %v), want %d", dev[:1], e.Seq, prev, ok, before)
		}
		before = e.Seq
	}
}
