package server

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/store"
)

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// counterReaches reports whether c reaches want within a few seconds. A
// stream counts an envelope after pushing it, so a client that has the
// envelope may read the counter a moment before it moves.
func counterReaches(t testing.TB, c prometheus.Counter, want float64) bool {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if counterValue(t, c) >= want {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// sendTo sends one envelope with body text from a to b's only device.
func (h *harness) sendTo(a, b *account, text string) error {
	id := b.id()
	_, err := h.relay.Send(context.Background(), req(a, &parleyv1.SendRequest{
		MessageId: messageID(0), Recipient: b.name,
		Envelopes: []*parleyv1.OutgoingEnvelope{{DeviceId: id[:], Body: envelope(text)}},
	}))
	return err
}

// drained opens b's stream and reads up to its Drained marker.
func (h *harness) drained(b *account) *stream {
	h.t.Helper()
	s := h.receive(b)
	for s.next(h.t).GetDrained() == nil {
	}
	return s
}

// afterHandOff starts a server with alice and bob, bob's stream drained,
// and one message from alice that the stream took as a hand-off.
func afterHandOff(t *testing.T) (h *harness, alice, bob *account, s *stream) {
	t.Helper()
	h = newHarness(t, testConfig())
	alice, bob = h.register("alice", 1), h.register("bob", 1)
	s = h.drained(bob)
	if err := h.sendTo(alice, bob, "first"); err != nil {
		t.Fatal(err)
	}
	if e := s.nextEnvelope(t); !bytes.Equal(e.Body, envelope("first")) {
		t.Fatalf("got %q, want the first message", e.Body)
	}
	if !counterReaches(t, h.srv.metrics.handedOff, 1) {
		t.Fatal("the first envelope was not handed off: the test would not exercise hand-offs")
	}
	if n := counterValue(t, h.srv.metrics.handedOff); n != 1 {
		t.Fatalf("%v envelopes handed off, want the first one only", n)
	}
	return h, alice, bob, s
}

// storeElsewhere stores an envelope from one account to another's device
// straight into the store, as a send through another node would, without
// telling anyone, and returns it with its Seq.
func (h *harness) storeElsewhere(from, to *account, text string) store.Envelope {
	h.t.Helper()
	now := time.Now()
	send := store.Send{Envelopes: []store.Envelope{{
		Device: to.id(), MessageID: store.MessageID(messageID(0)), SenderUsername: from.name, SenderDevice: from.id(),
		Body: envelope(text), Created: now, Expires: now.Add(time.Hour),
	}}}
	if err := h.st.Enqueue(context.Background(), send); err != nil {
		h.t.Fatal(err)
	}
	return send.Envelopes[0]
}

// TestHandoffNeverSkipsAnEnvelopeStoredElsewhere: an envelope stored
// through another node (here: straight into the store, as another node's
// send would, and not yet notified) sits in the queue between two that
// sends on this node hand to the stream. The stream must notice the gap
// — the second hand-off's Prev is not its cursor — and read the queue:
// pushing the hand-off would move its cursor past the other envelope,
// which would then never be delivered.
func TestHandoffNeverSkipsAnEnvelopeStoredElsewhere(t *testing.T) {
	h, alice, bob, s := afterHandOff(t)
	h.storeElsewhere(alice, bob, "elsewhere")
	if err := h.sendTo(alice, bob, "third"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"elsewhere", "third"} {
		if e := s.nextEnvelope(t); !bytes.Equal(e.Body, envelope(want)) {
			t.Fatalf("got %q, want %q: an envelope was skipped or reordered", e.Body, want)
		}
	}
}

// TestHandoffNeverStandsInForAnotherNodesNotification: an envelope that
// another node stores and notifies (here: straight into the store, and a
// notification with its Seq on the bus) after the stream's hand-offs are
// all pushed reaches the stream. The stream has nothing handed off that
// covers it, so it must read its queue — taking the hand-off chain for
// the whole story would leave the envelope waiting for the next send.
func TestHandoffNeverStandsInForAnotherNodesNotification(t *testing.T) {
	h, alice, bob, s := afterHandOff(t)
	e := h.storeElsewhere(alice, bob, "there")
	if err := h.srv.bus.Notify(context.Background(), bob.id(), e.Seq); err != nil {
		t.Fatal(err)
	}
	if e := s.nextEnvelope(t); !bytes.Equal(e.Body, envelope("there")) {
		t.Fatalf("got %q, want the envelope stored through the other node", e.Body)
	}
}

// TestHandoffDeliversConcurrentSendsOnceInOrder: sends from several
// senders at once, whose hand-offs reach the stream in any order, arrive
// exactly once each and in Seq order, and most without a queue read.
func TestHandoffDeliversConcurrentSendsOnceInOrder(t *testing.T) {
	const senders, each = 4, 50
	h := newHarness(t, benchConfig())
	bob := h.register("bob", 1)
	from := make([]*account, senders)
	for i := range from {
		from[i] = h.register(fmt.Sprint("sender", i), 1)
	}
	s := h.drained(bob)

	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for i, a := range from {
		wg.Go(func() {
			for j := range each {
				if err := h.sendTo(a, bob, fmt.Sprintf("%d/%d", i, j)); err != nil {
					errs <- err
				}
			}
		})
	}
	seen := map[string]bool{}
	var last uint64
	for range senders * each {
		e := s.nextEnvelope(t)
		if seen[string(e.Body)] {
			t.Fatalf("%q delivered twice", e.Body)
		}
		seen[string(e.Body)] = true
		if e.Seq <= last {
			t.Fatalf("seq %d after %d: out of order", e.Seq, last)
		}
		last = e.Seq
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case it := <-s.items:
		if e := it.GetEnvelope(); e != nil {
			t.Fatalf("an extra envelope %q after all %d", e.Body, senders*each)
		}
	case <-time.After(100 * time.Millisecond):
	}
	if !counterReaches(t, h.srv.metrics.handedOff, 1) {
		t.Error("no envelope was handed off: every one was read back from the store")
	}
}

// TestHandoffBounds: a stream's hand-off holds at most
// handoffMaxEnvelopes envelopes and handoffMaxBytes of bodies, the node's
// at most handoffNodeBytes; what does not fit is dropped and reported as
// an overflow (the stream then reads its queue), and the node's count
// returns to zero once the streams take or leave.
func TestHandoffBounds(t *testing.T) {
	var hs handoffs
	a, b := store.DeviceID{1}, store.DeviceID{2}
	var ha, hb handoff
	unregisterA := hs.register(a, &ha)
	unregisterB := hs.register(b, &hb)

	for i := range handoffMaxEnvelopes + 1 {
		hs.offer(store.Envelope{Device: a, Seq: uint64(i + 1), Body: []byte{1}})
	}
	envs, overflow := hs.take(&ha)
	if len(envs) != handoffMaxEnvelopes || !overflow {
		t.Fatalf("took %d envelopes, overflow %v; want %d and an overflow", len(envs), overflow, handoffMaxEnvelopes)
	}
	if envs, overflow := hs.take(&ha); len(envs) != 0 || overflow {
		t.Fatalf("a second take found %d envelopes, overflow %v; want nothing", len(envs), overflow)
	}

	hs.offer(store.Envelope{Device: b, Seq: 1, Body: make([]byte, handoffMaxBytes)})
	hs.offer(store.Envelope{Device: b, Seq: 2, Body: []byte{1}})
	if envs, overflow := hs.take(&hb); len(envs) != 1 || !overflow {
		t.Fatalf("took %d envelopes, overflow %v; want 1 and an overflow past %d bytes", len(envs), overflow, handoffMaxBytes)
	}

	// The node's budget: fill it from outside, then one more body overflows.
	hs.bytes.Add(handoffNodeBytes)
	hs.offer(store.Envelope{Device: a, Seq: 100, Body: []byte{1}})
	if envs, overflow := hs.take(&ha); len(envs) != 0 || !overflow {
		t.Fatalf("over the node's budget: took %d envelopes, overflow %v; want none and an overflow", len(envs), overflow)
	}
	hs.bytes.Add(-handoffNodeBytes)

	hs.offer(store.Envelope{Device: a, Seq: 3, Body: []byte{1, 2}})
	hs.offer(store.Envelope{Device: a, Seq: 2, Body: []byte{1}})
	if envs, _ := hs.take(&ha); len(envs) != 2 || envs[0].Seq != 2 || envs[1].Seq != 3 {
		t.Fatalf("took %v, want Seqs 2 then 3", envs)
	}
	hs.offer(store.Envelope{Device: b, Seq: 9, Body: []byte{1, 2, 3}})
	unregisterA()
	unregisterB()
	if n := hs.bytes.Load(); n != 0 {
		t.Errorf("the node counts %d bytes after every stream left, want 0", n)
	}
	hs.offer(store.Envelope{Device: a, Seq: 4, Body: []byte{1}})
	if n := hs.bytes.Load(); n != 0 {
		t.Errorf("an offer to a device without a stream counted %d bytes", n)
	}
}
