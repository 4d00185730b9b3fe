package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
)

func testCancelledContext(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	err := h.s.Enqueue(ctx, store.Send{MaxQueue: 100, Envelopes: []store.Envelope{envelope(f.ids[0], "x")}})
	wantErr(t, "Enqueue with a cancelled context", err, context.Canceled)
	_, err = h.s.Account(ctx, "alice")
	wantErr(t, "Account with a cancelled context", err, context.Canceled)
	_, err = h.s.ClaimBundle(ctx, f.ids[0])
	wantErr(t, "ClaimBundle with a cancelled context", err, context.Canceled)
	// The store is still usable with a live context.
	if _, err := h.s.Account(h.ctx, "alice"); err != nil {
		t.Errorf("Account after cancelled calls: %v", err)
	}
}

func testClosed(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	id := f.ids[0]
	h.close()
	s, ctx := h.s, h.ctx
	calls := map[string]func() error{
		"CreateAccount": func() error { return s.CreateAccount(ctx, newAccount(t, "bob", 1).NewAccount) },
		"Account":       func() error { _, err := s.Account(ctx, "alice"); return err },
		"DeleteAccount": func() error { return s.DeleteAccount(ctx, "alice") },
		"DeviceList":    func() error { _, err := s.DeviceList(ctx, "alice", 0); return err },
		"UpdateDeviceList": func() error {
			_, err := s.UpdateDeviceList(ctx, store.DeviceListUpdate{List: store.DeviceList{Username: "alice", Version: 2}, Devices: f.Devices})
			return err
		},
		"Devices":      func() error { _, err := s.Devices(ctx, "alice"); return err },
		"DeviceIDs":    func() error { _, err := s.DeviceIDs(ctx, "alice"); return err },
		"Device":       func() error { _, err := s.Device(ctx, id); return err },
		"TouchDevice":  func() error { return s.TouchDevice(ctx, id, time.Now()) },
		"AddPrekeys":   func() error { return s.AddPrekeys(ctx, id, prekeys(id, 1, 1)) },
		"ClaimBundle":  func() error { _, err := s.ClaimBundle(ctx, id); return err },
		"PrekeyCounts": func() error { _, _, err := s.PrekeyCounts(ctx, id); return err },
		"Enqueue": func() error {
			return s.Enqueue(ctx, store.Send{MaxQueue: 100, Envelopes: []store.Envelope{envelope(id, "x")}})
		},
		"Fetch":        func() error { _, err := s.Fetch(ctx, id, 0, 10); return err },
		"Ack":          func() error { return s.Ack(ctx, id, []uint64{1}) },
		"QueueLength":  func() error { _, err := s.QueueLength(ctx, id); return err },
		"Expire":       func() error { _, err := s.Expire(ctx, time.Now()); return err },
		"Secret":       func() error { _, err := s.Secret(ctx, "x", func() []byte { return []byte("x") }); return err },
		"CreateInvite": func() error { return s.CreateInvite(ctx, []byte("x"), time.Now().Add(time.Hour)) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// testDurability writes, closes, reopens and checks that everything the
// store acknowledged is there: every envelope whose Enqueue returned nil,
// every registration, list update and claim.
func testDurability(t *testing.T, h *harness) {
	const (
		senders   = 16
		perSender = 25
	)
	f := h.register("alice", 2)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked = map[store.MessageID]store.Envelope{}
	)
	for g := range senders {
		wg.Go(func() {
			for i := range perSender {
				e := envelope(f.ids[(g+i)%2], fmt.Sprint(g, "/", i))
				if err := h.s.Enqueue(h.ctx, store.Send{Envelopes: []store.Envelope{e}, MaxQueue: 1000}); err != nil {
					t.Errorf("Enqueue: %v", err)
					continue
				}
				mu.Lock()
				acked[e.MessageID] = e
				mu.Unlock()
			}
		})
	}
	claimed := h.claim(f.ids[0])
	added := newDeviceID()
	devs := append(slices.Clone(f.Devices), device("alice", added))
	if _, err := h.update("alice", 2, devs, map[store.DeviceID]store.PrekeyUpload{added: prekeys(added, 1, 1)}); err != nil {
		t.Fatalf("UpdateDeviceList: %v", err)
	}
	secret, err := h.s.Secret(h.ctx, "durable", func() []byte { return []byte("kept") })
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	wg.Wait()

	h.reopen()

	got := map[store.MessageID]store.Envelope{}
	for _, id := range f.ids {
		for _, e := range h.fetchAll(id) {
			got[e.MessageID] = e
		}
	}
	if len(got) != len(acked) {
		t.Errorf("after reopening, %d envelopes are queued; Enqueue acknowledged %d", len(got), len(acked))
	}
	for mid, want := range acked {
		if e, ok := got[mid]; !ok || !sameEnvelope(e, want) {
			t.Errorf("acknowledged envelope %q lost or changed across reopen", want.Body)
		}
	}
	if l, err := h.s.DeviceList(h.ctx, "alice", 0); err != nil || l.Version != 2 {
		t.Errorf("DeviceList after reopen = %+v, %v; want version 2", l, err)
	}
	if ot, pq := h.counts(added); ot != 1 || pq != 1 {
		t.Errorf("added device's prekeys after reopen = %d, %d, want 1, 1", ot, pq)
	}
	b := h.claim(f.ids[0])
	if b.OneTime == nil || b.OneTime.ID == claimed.OneTime.ID || b.PQ.ID == claimed.PQ.ID {
		t.Errorf("a prekey claimed before the restart was handed out again: %+v", b)
	}
	if v, err := h.s.Secret(h.ctx, "durable", func() []byte { return []byte("new") }); err != nil || !bytes.Equal(v, secret) {
		t.Errorf("Secret after reopen = %q, %v; want %q", v, err, secret)
	}
}

// testConcurrentMix runs senders, receivers (fetch after the last Seq,
// then ack) and prekey claimers at once; run it with -race. Every
// acknowledged envelope must reach its device exactly once, and no
// one-time prekey may be handed out twice.
func testConcurrentMix(t *testing.T, h *harness) {
	const (
		devices   = 3
		senders   = 8
		perSender = 40
		claimers  = 4
		keys      = 50
		fetchPage = 16
	)
	f := newAccount(t, "alice", devices)
	for _, id := range f.ids {
		f.Prekeys[id] = prekeys(id, keys, keys)
	}
	if err := h.s.CreateAccount(h.ctx, f.NewAccount); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	var (
		mu       sync.Mutex
		expected = make([]map[store.MessageID]bool, devices)
		sending  sync.WaitGroup
		others   sync.WaitGroup
		sent     atomic.Bool
	)
	for i := range expected {
		expected[i] = map[store.MessageID]bool{}
	}
	for g := range senders {
		sending.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range perSender {
				var send store.Send
				send.MaxQueue = 1 << 20
				var to []int
				for d := range devices {
					if r.IntN(2) == 0 || d == i%devices {
						send.Envelopes = append(send.Envelopes, envelope(f.ids[d], fmt.Sprint(g, "/", i)))
						to = append(to, d)
					}
				}
				if err := h.s.Enqueue(h.ctx, send); err != nil {
					t.Errorf("Enqueue: %v", err)
					continue
				}
				mu.Lock()
				for k, d := range to {
					expected[d][send.Envelopes[k].MessageID] = true
				}
				mu.Unlock()
			}
		})
	}
	received := make([]map[store.MessageID]int, devices)
	for d := range devices {
		received[d] = map[store.MessageID]int{}
		others.Go(func() {
			var last uint64
			deadline := time.Now().Add(time.Minute)
			for time.Now().Before(deadline) {
				// Read the flag before fetching: an empty fetch after all
				// sends returned means the queue is drained.
				finished := sent.Load()
				envs, err := h.s.Fetch(h.ctx, f.ids[d], last, fetchPage)
				if err != nil {
					t.Errorf("Fetch: %v", err)
					return
				}
				if len(envs) == 0 {
					if finished {
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				var seqs []uint64
				for _, e := range envs {
					if e.Seq <= last {
						t.Errorf("Fetch after %d returned Seq %d", last, e.Seq)
					}
					last = e.Seq
					received[d][e.MessageID]++
					seqs = append(seqs, e.Seq)
				}
				if err := h.s.Ack(h.ctx, f.ids[d], seqs); err != nil {
					t.Errorf("Ack: %v", err)
					return
				}
			}
			t.Errorf("receiver %d did not drain its queue in time", d)
		})
	}
	claims := make([]map[string]int, claimers)
	for c := range claimers {
		claims[c] = map[string]int{}
		others.Go(func() {
			// Claim round the devices until each is out of one-time
			// prekeys; nothing uploads more, so that is final.
			exhausted := map[int]bool{}
			for i := 0; len(exhausted) < devices; i++ {
				d := (c + i) % devices
				b, err := h.s.ClaimBundle(h.ctx, f.ids[d])
				if err != nil {
					t.Errorf("ClaimBundle: %v", err)
					return
				}
				if b.OneTime != nil {
					claims[c][fmt.Sprint(d, "/x/", b.OneTime.ID)]++
				}
				if !b.PQLastResort {
					claims[c][fmt.Sprint(d, "/pq/", b.PQ.ID)]++
				}
				if b.OneTime == nil && b.PQLastResort {
					exhausted[d] = true
				}
			}
		})
	}
	sending.Wait()
	sent.Store(true)
	others.Wait()

	for d := range devices {
		for mid := range expected[d] {
			if n := received[d][mid]; n != 1 {
				t.Errorf("device %d received an acknowledged envelope %d times, want once", d, n)
			}
		}
		for mid := range received[d] {
			if !expected[d][mid] {
				t.Errorf("device %d received an envelope no send put there", d)
			}
		}
	}
	all := map[string]int{}
	for _, m := range claims {
		for k, n := range m {
			all[k] += n
		}
	}
	for k, n := range all {
		if n != 1 {
			t.Errorf("one-time prekey %s handed out %d times", k, n)
		}
	}
	if len(all) != 2*devices*keys {
		t.Errorf("%d distinct one-time prekeys handed out, want %d", len(all), 2*devices*keys)
	}
}

// testNoGoroutineLeak opens a store, works it from several goroutines,
// closes it and waits for the process's goroutine count to come back.
func testNoGoroutineLeak(t *testing.T, h *harness) {
	const settle = 5 * time.Second
	h.close()
	before := runtime.NumGoroutine()
	h.s = h.openStore()
	s := h.s
	f := h.register("alice", 2)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				e := envelope(f.ids[g%2], fmt.Sprint(g, i))
				if err := s.Enqueue(h.ctx, store.Send{Envelopes: []store.Envelope{e}, MaxQueue: 1000}); err != nil {
					t.Errorf("Enqueue: %v", err)
				}
				if _, err := s.Fetch(h.ctx, e.Device, 0, 5); err != nil {
					t.Errorf("Fetch: %v", err)
				}
			}
			s.ClaimBundle(h.ctx, f.ids[g%2])
		})
	}
	wg.Wait()
	h.close()
	deadline := time.Now().Add(settle)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines before Open, %d %v after Close:\n%s", before, runtime.NumGoroutine(), settle, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
