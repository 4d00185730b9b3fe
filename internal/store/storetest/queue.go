package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
)

func testEnqueueSeq(t *testing.T, h *harness) {
	f := h.register("alice", 2)
	a, b := f.ids[0], f.ids[1]
	var wantA []store.Envelope
	for i := range 10 {
		e := envelope(a, fmt.Sprint("a", i))
		wantA = append(wantA, e)
		// Interleave another device's envelopes, in the same send and in
		// sends of their own.
		if i%2 == 0 {
			h.enqueue(e, envelope(b, fmt.Sprint("b", i)))
		} else {
			h.enqueue(e)
			h.enqueue(envelope(b, fmt.Sprint("b", i)))
		}
	}
	got := h.fetchAll(a)
	if len(got) != len(wantA) {
		t.Fatalf("Fetch returned %d envelopes, want %d", len(got), len(wantA))
	}
	for i, e := range got {
		if !sameEnvelope(e, wantA[i]) {
			t.Errorf("envelope %d = %+v, want %+v (in enqueue order)", i, e, wantA[i])
		}
		if i > 0 && e.Seq <= got[i-1].Seq {
			t.Errorf("Seq %d follows %d: not strictly increasing", e.Seq, got[i-1].Seq)
		}
	}
	if n := h.queueLength(a); n != 10 {
		t.Errorf("QueueLength = %d, want 10", n)
	}
}

// testEnqueueSeqNotReusedAfterAck acknowledges the newest envelope and
// enqueues another: its Seq must be larger, or a device fetching after its
// last Seq would never see it. Also across a restart with an empty queue.
func testEnqueueSeqNotReusedAfterAck(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	id := f.ids[0]
	h.enqueue(envelope(id, "1"), envelope(id, "2"))
	first := h.fetchAll(id)
	last := first[len(first)-1].Seq
	if err := h.s.Ack(h.ctx, id, []uint64{first[0].Seq, last}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	h.enqueue(envelope(id, "3"))
	got := h.fetchAll(id)
	if len(got) != 1 || got[0].Seq <= last {
		t.Fatalf("after acking Seq %d, the next envelope got %+v, want a larger Seq", last, got)
	}
	last = got[0].Seq
	if err := h.s.Ack(h.ctx, id, []uint64{last}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	h.reopen()
	h.enqueue(envelope(id, "4"))
	got, err := h.s.Fetch(h.ctx, id, last, 10)
	if err != nil || len(got) != 1 || got[0].Seq <= last {
		t.Fatalf("after a restart with an empty queue, Fetch(after %d) = %+v, %v; want the new envelope", last, got, err)
	}
}

func testFetch(t *testing.T, h *harness) {
	f := h.register("alice", 2)
	id := f.ids[0]
	var want []store.Envelope
	for i := range 10 {
		e := envelope(id, fmt.Sprint(i))
		want = append(want, e)
		h.enqueue(e, envelope(f.ids[1], "other"))
	}
	all := h.fetchAll(id)
	if len(all) != 10 {
		t.Fatalf("Fetch returned %d envelopes, want 10", len(all))
	}
	var after uint64
	for page := 0; page < 4; page++ {
		got, err := h.s.Fetch(h.ctx, id, after, 3)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		wantN := min(3, 10-3*page)
		if len(got) != wantN {
			t.Fatalf("page %d: %d envelopes, want %d", page, len(got), wantN)
		}
		for i, e := range got {
			if e.Device != id || !sameEnvelope(e, want[3*page+i]) || e.Seq <= after {
				t.Errorf("page %d envelope %d = %+v, want %+v after Seq %d", page, i, e, want[3*page+i], after)
			}
		}
		after = got[len(got)-1].Seq
	}
	if got, err := h.s.Fetch(h.ctx, id, after, 3); err != nil || len(got) != 0 {
		t.Errorf("Fetch after the last Seq = %d envelopes, %v; want none", len(got), err)
	}
	// Fetch does not consume.
	if got := h.fetchAll(id); len(got) != 10 {
		t.Errorf("second Fetch returned %d envelopes, want 10", len(got))
	}
}

func testEnqueueIdempotent(t *testing.T, h *harness) {
	f := h.register("alice", 2)
	a, b := f.ids[0], f.ids[1]
	e1, e2 := envelope(a, "one"), envelope(b, "two")
	send := store.Send{Envelopes: []store.Envelope{e1, e2}, MaxQueue: 100}
	for range 3 {
		if err := h.s.Enqueue(h.ctx, send); err != nil {
			t.Fatalf("Enqueue (retry): %v", err)
		}
	}
	// A retry with a different body is still the same message.
	changed := e1
	changed.Body = []byte("changed")
	h.enqueue(changed)
	for _, want := range []store.Envelope{e1, e2} {
		got := h.fetchAll(want.Device)
		if len(got) != 1 || !sameEnvelope(got[0], want) {
			t.Errorf("queue after retries = %+v, want only %+v", got, want)
		}
	}

	// A duplicate inside one send is stored once; the same message id for
	// another device is a different envelope.
	e3 := envelope(a, "three")
	dup := e3
	dup.Body = []byte("three again")
	other := e3
	other.Device = b
	h.enqueue(e3, dup, other)
	if got := h.fetchAll(a); len(got) != 2 || !sameEnvelope(got[1], e3) {
		t.Errorf("queue after an in-send duplicate = %+v, want e1 and e3", got)
	}
	if got := h.fetchAll(b); len(got) != 2 || !sameEnvelope(got[1], other) {
		t.Errorf("the same message id for another device was not stored: %+v", got)
	}

	// After an ack the message id is free again (documented: clients
	// de-duplicate).
	got := h.fetchAll(a)
	if err := h.s.Ack(h.ctx, a, []uint64{got[0].Seq}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	h.enqueue(e1)
	if got := h.fetchAll(a); len(got) != 2 || !sameEnvelope(got[1], e1) {
		t.Errorf("a retry after the ack was not stored again: %+v", got)
	}
}

// testEnqueueIdempotentConcurrent sends the same send from many goroutines
// at once (a client retrying over several connections): every call
// succeeds, each envelope is stored once, and exactly one call reports
// each envelope's Seq (the others stored nothing and report 0).
func testEnqueueIdempotentConcurrent(t *testing.T, h *harness) {
	const racers = 16
	f := h.register("alice", 2)
	var envs []store.Envelope
	for i := range 4 {
		envs = append(envs, envelope(f.ids[i%2], fmt.Sprint(i)))
	}
	var wg sync.WaitGroup
	errs := make([]error, racers)
	sends := make([]store.Send, racers)
	for i := range racers {
		// Each call its own copy: Enqueue writes Seq and Prev into it.
		sends[i] = store.Send{MaxQueue: 100, Envelopes: slices.Clone(envs)}
		wg.Go(func() { errs[i] = h.s.Enqueue(h.ctx, sends[i]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("Enqueue: %v", err)
		}
	}
	reported := map[uint64]int{}
	for _, s := range sends {
		for _, e := range s.Envelopes {
			if e.Seq != 0 {
				reported[e.Seq]++
			}
		}
	}
	for _, id := range f.ids {
		for _, e := range h.fetchAll(id) {
			if reported[e.Seq] != 1 {
				t.Errorf("Seq %d reported by %d calls, want 1", e.Seq, reported[e.Seq])
			}
			delete(reported, e.Seq)
		}
	}
	if len(reported) != 0 {
		t.Errorf("Seqs reported for envelopes that are not queued: %v", reported)
	}
	for _, id := range f.ids {
		if got := h.fetchAll(id); len(got) != 2 {
			t.Errorf("queue holds %d envelopes after concurrent retries, want 2", len(got))
		}
	}
}

func testEnqueueUnknownDevice(t *testing.T, h *harness) {
	f := h.register("alice", 2)
	u1, u2 := newDeviceID(), newDeviceID()
	send := store.Send{MaxQueue: 100, Envelopes: []store.Envelope{
		envelope(f.ids[0], "known"), envelope(u1, "unknown"), envelope(f.ids[1], "known"),
		envelope(u2, "unknown"), envelope(u1, "unknown again"),
	}}
	err := h.s.Enqueue(h.ctx, send)
	var ude *store.UnknownDeviceError
	if !errors.As(err, &ude) {
		t.Fatalf("Enqueue to unknown devices: %v, want *UnknownDeviceError", err)
	}
	if got, want := sortedIDs(ude.Devices), sortedIDs([]store.DeviceID{u1, u2}); !slices.Equal(got, want) {
		t.Errorf("UnknownDeviceError.Devices = %x, want %x, each once", got, want)
	}
	for _, id := range f.ids {
		if n := h.queueLength(id); n != 0 {
			t.Errorf("a refused send stored %d envelopes for a known device", n)
		}
	}
}

func testEnqueueQueueFull(t *testing.T, h *harness) {
	const limit = 3
	f := h.register("alice", 2)
	a, b := f.ids[0], f.ids[1]
	var queued []store.Envelope
	for i := range limit {
		e := envelope(a, fmt.Sprint(i))
		queued = append(queued, e)
		if err := h.s.Enqueue(h.ctx, store.Send{Envelopes: []store.Envelope{e}, MaxQueue: limit}); err != nil {
			t.Fatalf("Enqueue %d of %d: %v", i+1, limit, err)
		}
	}
	// One more to a, together with one to b: all or nothing.
	err := h.s.Enqueue(h.ctx, store.Send{MaxQueue: limit, Envelopes: []store.Envelope{envelope(b, "b"), envelope(a, "over")}})
	var qfe *store.QueueFullError
	if !errors.As(err, &qfe) {
		t.Fatalf("Enqueue over the limit: %v, want *QueueFullError", err)
	}
	if qfe.Device != a || qfe.Limit != limit {
		t.Errorf("QueueFullError = %+v, want device %x, limit %d", qfe, a, limit)
	}
	if n := h.queueLength(b); n != 0 {
		t.Errorf("a refused send stored %d envelopes for the other device", n)
	}
	if n := h.queueLength(a); n != limit {
		t.Errorf("full queue holds %d, want %d", n, limit)
	}
	// A retry of queued envelopes stores nothing new, so it succeeds even
	// on a full queue.
	if err := h.s.Enqueue(h.ctx, store.Send{Envelopes: queued, MaxQueue: limit}); err != nil {
		t.Errorf("retrying queued envelopes on a full queue: %v", err)
	}
	// One send that alone overflows an empty queue.
	err = h.s.Enqueue(h.ctx, store.Send{MaxQueue: 1, Envelopes: []store.Envelope{envelope(b, "1"), envelope(b, "2")}})
	if !errors.As(err, &qfe) || qfe.Device != b {
		t.Errorf("Enqueue of 2 envelopes with limit 1: %v, want *QueueFullError for the device", err)
	}
	if n := h.queueLength(b); n != 0 {
		t.Errorf("an overflowing send stored %d envelopes", n)
	}
	// Room again after an ack.
	got := h.fetchAll(a)
	if err := h.s.Ack(h.ctx, a, []uint64{got[0].Seq}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := h.s.Enqueue(h.ctx, store.Send{Envelopes: []store.Envelope{envelope(a, "fits")}, MaxQueue: limit}); err != nil {
		t.Errorf("Enqueue after an ack made room: %v", err)
	}
	// One short of the limit, a send whose envelopes for the device are a
	// queued one (a retry: does not count), one new one, and that new one
	// again (stored once): it adds one, so it fits.
	got = h.fetchAll(a)
	if err := h.s.Ack(h.ctx, a, []uint64{got[0].Seq}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	edge := envelope(a, "edge")
	if err := h.s.Enqueue(h.ctx, store.Send{MaxQueue: limit, Envelopes: []store.Envelope{got[1], edge, edge}}); err != nil {
		t.Errorf("a send adding one envelope to a queue one short of the limit: %v", err)
	}
	if n := h.queueLength(a); n != limit {
		t.Errorf("queue holds %d after filling it to the limit, want %d", n, limit)
	}
}

// testEnqueueBatchIsolation sends good and bad sends at the same time, so
// that an engine batching concurrent sends (group commit) puts them in
// the same transaction: the bad ones must fail alone, the good ones must
// all be stored.
func testEnqueueBatchIsolation(t *testing.T, h *harness) {
	const rounds = 32
	f := h.register("alice", 2)
	good, full := f.ids[0], f.ids[1]
	h.enqueue(envelope(full, "fills it"))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		sent  []store.Envelope
		start = make(chan struct{}) // release all sends at once
	)
	for i := range rounds {
		wg.Go(func() {
			<-start
			e := envelope(good, fmt.Sprint("good", i))
			if err := h.s.Enqueue(h.ctx, store.Send{Envelopes: []store.Envelope{e}, MaxQueue: 1000}); err != nil {
				t.Errorf("good send: %v", err)
				return
			}
			mu.Lock()
			sent = append(sent, e)
			mu.Unlock()
		})
		wg.Go(func() {
			<-start
			err := h.s.Enqueue(h.ctx, store.Send{MaxQueue: 1000, Envelopes: []store.Envelope{
				envelope(good, "with an unknown device"), envelope(newDeviceID(), "x")}})
			var ude *store.UnknownDeviceError
			if !errors.As(err, &ude) {
				t.Errorf("send to an unknown device: %v, want *UnknownDeviceError", err)
			}
		})
		wg.Go(func() {
			<-start
			err := h.s.Enqueue(h.ctx, store.Send{MaxQueue: 1, Envelopes: []store.Envelope{
				envelope(good, "with a full queue"), envelope(full, "over")}})
			var qfe *store.QueueFullError
			if !errors.As(err, &qfe) {
				t.Errorf("send to a full queue: %v, want *QueueFullError", err)
			}
		})
	}
	close(start)
	wg.Wait()
	got := h.fetchAll(good)
	if len(got) != len(sent) {
		t.Fatalf("queue holds %d envelopes, want the %d good ones", len(got), len(sent))
	}
	for _, e := range got {
		if !slices.ContainsFunc(sent, func(s store.Envelope) bool { return sameEnvelope(s, e) }) {
			t.Errorf("queue holds %q, which a failed send carried", e.Body)
		}
	}
}

func testAck(t *testing.T, h *harness) {
	f := h.register("alice", 2)
	a, b := f.ids[0], f.ids[1]
	for i := range 5 {
		h.enqueue(envelope(a, fmt.Sprint("a", i)), envelope(b, fmt.Sprint("b", i)))
	}
	qa, qb := h.fetchAll(a), h.fetchAll(b)
	// Ack two of a's, one of b's seqs under a's id (must not touch b's
	// queue), and a seq that does not exist.
	if err := h.s.Ack(h.ctx, a, []uint64{qa[0].Seq, qa[2].Seq, qb[1].Seq, qa[4].Seq + 1000, ^uint64(0)}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	got := h.fetchAll(a)
	if want := []store.MessageID{qa[1].MessageID, qa[3].MessageID, qa[4].MessageID}; !slices.Equal(messageIDs(got), want) {
		t.Errorf("a's queue after Ack holds %d envelopes, want seqs 2, 4, 5", len(got))
	}
	if got := h.fetchAll(b); len(got) != 5 {
		t.Errorf("b's queue holds %d envelopes, want all 5 (acked under another device's id)", len(got))
	}
	if n := h.queueLength(a); n != 3 {
		t.Errorf("QueueLength(a) = %d, want 3", n)
	}
	// Acking again, or nothing, is harmless.
	if err := h.s.Ack(h.ctx, a, []uint64{qa[0].Seq}); err != nil {
		t.Errorf("repeated Ack: %v", err)
	}
	if err := h.s.Ack(h.ctx, a, nil); err != nil {
		t.Errorf("empty Ack: %v", err)
	}
	if n := h.queueLength(a); n != 3 {
		t.Errorf("QueueLength(a) after repeated Ack = %d, want 3", n)
	}
}

func testExpire(t *testing.T, h *harness) {
	f := h.register("alice", 1)
	id := f.ids[0]
	var live []store.Envelope
	for i := range 6 {
		e := envelope(id, fmt.Sprint(i))
		if i%2 == 0 {
			e.Expires = time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
		} else {
			live = append(live, e)
		}
		h.enqueue(e)
	}
	// Expired envelopes are skipped, and do not use up the limit.
	got, err := h.s.Fetch(h.ctx, id, 0, 3)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if !slices.Equal(messageIDs(got), messageIDs(live)) {
		t.Errorf("Fetch returned %d envelopes, want the 3 live ones", len(got))
	}
	n, err := h.s.Expire(h.ctx, time.Now())
	if err != nil || n != 3 {
		t.Errorf("Expire = %d, %v; want 3", n, err)
	}
	if n := h.queueLength(id); n != 3 {
		t.Errorf("QueueLength after Expire = %d, want 3", n)
	}
	if n, err := h.s.Expire(h.ctx, time.Now()); err != nil || n != 0 {
		t.Errorf("second Expire = %d, %v; want 0", n, err)
	}
	if n, err := h.s.Expire(h.ctx, time.Now().Add(2*time.Hour)); err != nil || n != 3 {
		t.Errorf("Expire two hours later = %d, %v; want 3", n, err)
	}
	if n := h.queueLength(id); n != 0 {
		t.Errorf("QueueLength = %d, want 0", n)
	}
}

func testSecret(t *testing.T, h *harness) {
	calls := 0
	gen := func(v string) func() []byte {
		return func() []byte { calls++; return []byte(v) }
	}
	v, err := h.s.Secret(h.ctx, "kt-signing", gen("first"))
	if err != nil || string(v) != "first" {
		t.Fatalf("Secret (create) = %q, %v", v, err)
	}
	v, err = h.s.Secret(h.ctx, "kt-signing", gen("second"))
	if err != nil || string(v) != "first" {
		t.Errorf("Secret (get) = %q, %v; want the first value", v, err)
	}
	if calls != 1 {
		t.Errorf("gen called %d times, want once", calls)
	}
	v, err = h.s.Secret(h.ctx, "vrf", gen("other"))
	if err != nil || string(v) != "other" {
		t.Errorf("Secret of another name = %q, %v", v, err)
	}
	h.reopen()
	v, err = h.s.Secret(h.ctx, "kt-signing", gen("third"))
	if err != nil || string(v) != "first" {
		t.Errorf("Secret after reopen = %q, %v; want the first value", v, err)
	}
}

func testSecretConcurrent(t *testing.T, h *harness) {
	const racers = 16
	var wg sync.WaitGroup
	got := make([][]byte, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			got[i], errs[i] = h.s.Secret(h.ctx, "contested", func() []byte { return fmt.Appendf(nil, "value-%d", i) })
		})
	}
	wg.Wait()
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("Secret: %v", errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Errorf("concurrent first calls disagree: %q and %q", got[i], got[0])
		}
	}
}
