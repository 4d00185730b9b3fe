package hub_test

import (
	"testing"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/bus/hub"
	"github.com/parleyim/parley/internal/store"
)

// The hub's behaviour as a bus is covered by the conformance suite through
// both engines; these tests pin what the engines rely on beyond it.

// received reports whether ch has a value ready, taking it.
func received(ch <-chan uint64) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestZeroValue: engines embed a Hub by value, so the zero value must work.
func TestZeroValue(t *testing.T) {
	var h hub.Hub
	if !h.Wake(store.DeviceID{1}, 0) {
		t.Fatal("Wake on a zero Hub reports closed")
	}
	wake, cancel := h.Subscribe(store.DeviceID{1})
	defer cancel()
	h.Wake(store.DeviceID{1}, 0)
	if !received(wake) {
		t.Fatal("subscriber of a zero Hub not woken")
	}
}

// TestWakeAll wakes every subscriber once (coalesced), and nothing after
// they cancel.
func TestWakeAll(t *testing.T) {
	var h hub.Hub
	a, cancelA := h.Subscribe(store.DeviceID{1})
	b, cancelB := h.Subscribe(store.DeviceID{2})
	h.WakeAll()
	h.WakeAll()
	for i, ch := range []<-chan uint64{a, b} {
		select {
		case seq := <-ch:
			if seq != bus.Unknown {
				t.Errorf("subscriber %d woken by WakeAll with seq %d, want Unknown: it must read its queue", i, seq)
			}
		default:
			t.Errorf("subscriber %d not woken by WakeAll", i)
		}
		if received(ch) {
			t.Errorf("subscriber %d: two wake-ups pending, want them coalesced", i)
		}
	}
	cancelA()
	cancelB()
	h.WakeAll()
	if received(a) || received(b) {
		t.Error("cancelled subscriber woken by WakeAll")
	}
}

// TestClose: a closed hub reports it, wakes no one and hands out channels
// that never receive.
func TestClose(t *testing.T) {
	var h hub.Hub
	old, cancelOld := h.Subscribe(store.DeviceID{1})
	h.Close()
	h.Close()
	if h.Wake(store.DeviceID{1}, 0) {
		t.Error("Wake after Close reports open")
	}
	h.WakeAll()
	again, cancelAgain := h.Subscribe(store.DeviceID{1})
	cancelOld()
	cancelAgain()
	cancelAgain()
	if received(old) || received(again) {
		t.Error("a subscriber received after Close")
	}
}

// TestWakeDoesNotAllocate: Wake runs once per recipient device of every
// send.
func TestWakeDoesNotAllocate(t *testing.T) {
	var h hub.Hub
	id := store.DeviceID{1}
	_, cancel := h.Subscribe(id)
	defer cancel()
	if n := testing.AllocsPerRun(100, func() { h.Wake(id, 0) }); n != 0 {
		t.Errorf("Wake: %v allocs per call, want 0", n)
	}
}

// TestWakeCarriesLargestSeq: wake-ups that pile up before the subscriber
// reads arrive as one carrying the largest seq, and a wake-up without a
// seq (0) makes it Unknown — a subscriber told less than the truth would
// skip a queue read it needs, and stall.
func TestWakeCarriesLargestSeq(t *testing.T) {
	var h hub.Hub
	id := store.DeviceID{7}
	wake, cancel := h.Subscribe(id)
	defer cancel()
	for _, tc := range []struct {
		name  string
		wakes []uint64
		want  uint64
	}{
		{"in order", []uint64{3, 5, 9}, 9},
		{"out of order", []uint64{12, 10, 11}, 12},
		{"smaller than an earlier round", []uint64{4}, 4},
		{"one without a seq", []uint64{20, 0, 21}, bus.Unknown},
	} {
		for _, seq := range tc.wakes {
			h.Wake(id, seq)
		}
		select {
		case got := <-wake:
			if got != tc.want {
				t.Errorf("%s: woken with %d, want %d", tc.name, got, tc.want)
			}
		default:
			t.Fatalf("%s: not woken", tc.name)
		}
		if received(wake) {
			t.Errorf("%s: a second wake-up pending, want one", tc.name)
		}
	}
}
