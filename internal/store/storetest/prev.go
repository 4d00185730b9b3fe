package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
)

// Seq and Prev as Enqueue reports them (store.Envelope.Prev): the server
// hands a freshly stored envelope straight to a delivery stream whose
// last pushed Seq equals the envelope's Prev, without reading the queue.
// A Prev that skipped an envelope would make that stream skip it too, so
// these tests check that each device's Prevs chain its Seqs with no gap,
// whatever stored them.

// send enqueues envs as one send and returns them as Enqueue left them,
// with Seq and Prev set.
func (h *harness) send(envs ...store.Envelope) []store.Envelope {
	h.t.Helper()
	if err := h.s.Enqueue(h.ctx, store.Send{Envelopes: envs, MaxQueue: 1 << 20}); err != nil {
		h.t.Fatalf("Enqueue: %v", err)
	}
	return envs
}

// wantPrev checks what Enqueue reported for one envelope.
func wantPrev(t *testing.T, what string, e store.Envelope, prev uint64) {
	t.Helper()
	if e.Seq == 0 || e.Seq <= prev || e.Prev != prev {
		t.Errorf("%s: Seq %d, Prev %d; want Prev %d and a larger Seq", what, e.Seq, e.Prev, prev)
	}
}

// wantFetched checks that a device's queue holds exactly the envelopes
// Enqueue reported, in order, with the Seqs it reported and Prev 0.
func (h *harness) wantFetched(dev store.DeviceID, sent []store.Envelope) {
	h.t.Helper()
	got := h.fetchAll(dev)
	if len(got) != len(sent) {
		h.t.Fatalf("Fetch returned %d envelopes, Enqueue reported %d", len(got), len(sent))
	}
	for i, e := range got {
		if e.MessageID != sent[i].MessageID || e.Seq != sent[i].Seq {
			h.t.Errorf("Fetch: envelope %d is %x with Seq %d; Enqueue reported %x with Seq %d",
				i, e.MessageID[:4], e.Seq, sent[i].MessageID[:4], sent[i].Seq)
		}
		if e.Prev != 0 {
			h.t.Errorf("Fetch: envelope %d has Prev %d, want 0 (only Enqueue sets it)", i, e.Prev)
		}
	}
}

// testEnqueueReportsSeqAndPrev: Enqueue reports the Seq Fetch later
// returns, and each envelope's Prev is the Seq of the device's envelope
// before it: in one send, across sends, with several envelopes for one
// device in one send, after duplicates, acks, expiry and a restart.
func testEnqueueReportsSeqAndPrev(t *testing.T, h *harness) {
	f := h.register("alice", 3)
	a, b, c := f.ids[0], f.ids[1], f.ids[2]

	s1 := h.send(envelope(a, "a1"), envelope(b, "b1"))
	wantPrev(t, "first envelope of a", s1[0], 0)
	wantPrev(t, "first envelope of b, in the same send", s1[1], 0)
	s2 := h.send(envelope(a, "a2"))
	wantPrev(t, "a's second envelope", s2[0], s1[0].Seq)
	s3 := h.send(envelope(c, "c1"), envelope(a, "a3"), envelope(b, "b2"), envelope(a, "a4"))
	wantPrev(t, "first envelope of c", s3[0], 0)
	wantPrev(t, "a's third envelope", s3[1], s2[0].Seq)
	wantPrev(t, "b's second envelope", s3[2], s1[1].Seq)
	wantPrev(t, "a's fourth envelope, in the same send as its third", s3[3], s3[1].Seq)

	// A retry of a queued envelope, and a duplicate inside the send,
	// store nothing and report Seq 0 and Prev 0, whatever the caller left
	// in the fields (the retry carries those of its first call); the new
	// envelopes beside them follow the last stored one.
	retry := slices.Clone(s3[1:2])
	dup := envelope(b, "dup")
	retry = append(retry, dup, dup, envelope(b, "b3"))
	retry[2].Seq, retry[2].Prev = 1<<40, 1<<40
	h.send(retry...)
	for i, e := range retry[:3] {
		if i == 1 {
			wantPrev(t, "a new envelope of b", e, s3[2].Seq)
			continue
		}
		if e.Seq != 0 || e.Prev != 0 {
			t.Errorf("duplicate %d: Seq %d, Prev %d; want 0, 0 (not stored)", i, e.Seq, e.Prev)
		}
	}
	wantPrev(t, "b's envelope after a duplicate", retry[3], retry[1].Seq)

	h.wantFetched(a, []store.Envelope{s1[0], s2[0], s3[1], s3[3]})
	h.wantFetched(b, []store.Envelope{s1[1], s3[2], retry[1], retry[3]})
	h.wantFetched(c, s3[:1])

	// Prev is the last Seq ever stored, not the last still queued: after
	// a's queue is acknowledged, and c's expired, the next envelope still
	// follows the last one.
	if err := h.s.Ack(h.ctx, a, []uint64{s1[0].Seq, s2[0].Seq, s3[1].Seq, s3[3].Seq}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	expired := envelope(c, "expired")
	expired.Expires = time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
	ce := h.send(expired)
	wantPrev(t, "c's expired envelope", ce[0], s3[0].Seq)
	if err := h.s.Ack(h.ctx, c, []uint64{s3[0].Seq}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if n, err := h.s.Expire(h.ctx, time.Now()); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1", n, err)
	}
	a5 := h.send(envelope(a, "a5"))
	wantPrev(t, "a's envelope after its queue was acknowledged", a5[0], s3[3].Seq)
	c2 := h.send(envelope(c, "c2"))
	wantPrev(t, "c's envelope after its queue expired", c2[0], ce[0].Seq)

	// The last Seq survives a restart, also for an empty queue.
	if err := h.s.Ack(h.ctx, a, []uint64{a5[0].Seq}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	h.reopen()
	a6 := h.send(envelope(a, "a6"), envelope(b, "b4"))
	wantPrev(t, "a's envelope after a restart with its queue empty", a6[0], a5[0].Seq)
	wantPrev(t, "b's envelope after a restart", a6[1], retry[3].Seq)
}

// testEnqueuePrevFailedSends: a send that fails stores nothing, so it
// must not move the device's last Seq either: the next stored envelope's
// Prev is the last Seq stored before the failures.
func testEnqueuePrevFailedSends(t *testing.T, h *harness) {
	const limit = 2
	f := h.register("alice", 2)
	a, full := f.ids[0], f.ids[1]
	h.send(envelope(full, "f1"), envelope(full, "f2")) // at the limit
	a1 := h.send(envelope(a, "a1"))[0]

	failing := []struct {
		name string
		envs []store.Envelope
		want any
	}{
		{"over the limit on its own", []store.Envelope{envelope(a, "x"), envelope(a, "y"), envelope(a, "z")}, new(*store.QueueFullError)},
		{"with a full queue", []store.Envelope{envelope(a, "x"), envelope(full, "over")}, new(*store.QueueFullError)},
		{"with an unknown device", []store.Envelope{envelope(a, "x"), envelope(newDeviceID(), "x")}, new(*store.UnknownDeviceError)},
	}
	for _, tc := range failing {
		err := h.s.Enqueue(h.ctx, store.Send{Envelopes: tc.envs, MaxQueue: limit})
		if err == nil || !errors.As(err, tc.want) {
			t.Fatalf("send %s: %v, want %T", tc.name, err, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	err := h.s.Enqueue(ctx, store.Send{Envelopes: []store.Envelope{envelope(a, "cancelled")}, MaxQueue: limit})
	wantErr(t, "Enqueue with a cancelled context", err, context.Canceled)

	next := h.send(envelope(a, "a2"))
	wantPrev(t, "a's envelope after failed sends", next[0], a1.Seq)
	h.wantFetched(a, []store.Envelope{a1, next[0]})
}

// testEnqueuePrevConcurrent sends to one device from many goroutines at
// once, so that an engine batching concurrent sends (group commit) stores
// several of them, and sometimes two envelopes of one send, in one
// transaction, with failing sends in the same batches. Sorted by Seq, the
// reported (Seq, Prev) pairs must form one chain from the device's last
// Seq before, with no gap, and match what Fetch returns.
func testEnqueuePrevConcurrent(t *testing.T, h *harness) {
	const (
		senders   = 8
		perSender = 50
	)
	f := h.register("alice", 2)
	dev, other := f.ids[0], f.ids[1]
	start := h.send(envelope(dev, "before"))[0].Seq

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sent []store.Envelope // every envelope of dev that Enqueue stored
		go1  = make(chan struct{})
	)
	for g := range senders {
		wg.Go(func() {
			<-go1
			for i := range perSender {
				envs := []store.Envelope{envelope(dev, fmt.Sprint(g, "/", i)), envelope(other, "other")}
				if i%5 == 0 { // two envelopes for dev in one send
					envs = append(envs, envelope(dev, fmt.Sprint(g, "/", i, "b")))
				}
				if err := h.s.Enqueue(h.ctx, store.Send{Envelopes: envs, MaxQueue: 1 << 20}); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
				mu.Lock()
				for _, e := range envs {
					if e.Device == dev {
						sent = append(sent, e)
					}
				}
				mu.Unlock()
			}
		})
	}
	// Sends that fail, in the same batches: each carries an envelope for
	// dev that must not enter the chain.
	wg.Go(func() {
		<-go1
		for i := range perSender {
			err := h.s.Enqueue(h.ctx, store.Send{Envelopes: []store.Envelope{
				envelope(dev, fmt.Sprint("unknown/", i)), envelope(newDeviceID(), "x")}, MaxQueue: 1 << 20})
			var ude *store.UnknownDeviceError
			if !errors.As(err, &ude) {
				t.Errorf("send to an unknown device: %v, want *UnknownDeviceError", err)
			}
			err = h.s.Enqueue(h.ctx, store.Send{Envelopes: []store.Envelope{envelope(dev, fmt.Sprint("full/", i))}, MaxQueue: 1})
			var qfe *store.QueueFullError
			if !errors.As(err, &qfe) {
				t.Errorf("send to a full queue: %v, want *QueueFullError", err)
			}
		}
	})
	close(go1)
	wg.Wait()
	if t.Failed() {
		return
	}

	slices.SortFunc(sent, func(x, y store.Envelope) int {
		switch {
		case x.Seq < y.Seq:
			return -1
		case x.Seq > y.Seq:
			return 1
		}
		return 0
	})
	prev := start
	for i, e := range sent {
		if e.Seq == 0 || e.Prev != prev {
			t.Fatalf("envelope %d of %d in Seq order: Seq %d, Prev %d; want Prev %d (the Seq before it)", i, len(sent), e.Seq, e.Prev, prev)
		}
		prev = e.Seq
	}
	if want := senders * (perSender + perSender/5); len(sent) != want {
		t.Errorf("%d envelopes stored for the device, want %d", len(sent), want)
	}
	got, err := h.s.Fetch(h.ctx, dev, start, 1000)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(got) != len(sent) {
		t.Fatalf("Fetch after Seq %d returned %d envelopes, Enqueue reported %d", start, len(got), len(sent))
	}
	for i, e := range got {
		if e.Seq != sent[i].Seq || e.MessageID != sent[i].MessageID {
			t.Fatalf("Fetch: envelope %d has Seq %d, Enqueue reported Seq %d for it", i, e.Seq, sent[i].Seq)
		}
	}
	// And the chain goes on after the burst.
	wantPrev(t, "the envelope after the burst", h.send(envelope(dev, "after"))[0], prev)
}
