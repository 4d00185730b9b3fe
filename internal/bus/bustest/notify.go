package bustest

import (
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/bus"
)

// testNotifyWakesOnlyThatDevice: a notification for X wakes X's subscriber
// and not Y's, and Y's subscription works when its own turn comes.
func testNotifyWakesOnlyThatDevice(t *testing.T, h *harness) {
	x, y := newDeviceID(), newDeviceID()
	wakeX, cancelX := h.last().Subscribe(x)
	defer cancelX()
	wakeY, cancelY := h.last().Subscribe(y)
	defer cancelY()

	if err := h.first().Notify(t.Context(), x, 0); err != nil {
		t.Fatalf("Notify(x): %v", err)
	}
	waitFor(t, wakeX, "x's subscriber after Notify(x)")
	staysQuiet(t, "y's subscriber after Notify(x)", wakeY)

	if err := h.first().Notify(t.Context(), y, 0); err != nil {
		t.Fatalf("Notify(y): %v", err)
	}
	waitFor(t, wakeY, "y's subscriber after Notify(y)")
}

// testNotifyWithoutSubscribers: notifying a device nobody serves is not an
// error; its mail simply waits in the queue.
func testNotifyWithoutSubscribers(t *testing.T, h *harness) {
	for i, b := range h.buses {
		if err := b.Notify(t.Context(), newDeviceID(), 0); err != nil {
			t.Errorf("bus %d: Notify with no subscriber: %v", i, err)
		}
	}
}

// testNotifyCoalescesWithoutBlocking: a burst of notifications to
// subscribers that do not read finishes promptly (a slow stream must not
// stall every sender) and arrives as fewer wake-ups than notifications.
func testNotifyCoalescesWithoutBlocking(t *testing.T, h *harness) {
	const burst = 1000
	id := newDeviceID()
	wakes := make([]<-chan uint64, len(h.buses))
	for i, b := range h.buses {
		wake, cancel := b.Subscribe(id)
		// If Notify blocks, so may cancel: bound it rather than hang.
		t.Cleanup(func() { within(t, fmt.Sprintf("bus %d: cancel", i), cancel) })
		wakes[i] = wake
	}

	done := make(chan error, 1)
	go func() {
		for range burst {
			if err := h.first().Notify(t.Context(), id, 0); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Notify: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("%d Notify calls to subscribers that do not read took over %v: Notify blocks", burst, timeout)
	}

	for i, wake := range wakes {
		waitFor(t, wake, fmt.Sprintf("subscriber on bus %d after the burst", i))
	}
	time.Sleep(quiet) // let a networked engine deliver the rest
	for i, wake := range wakes {
		if n := 1 + drain(wake); n >= burst {
			t.Errorf("subscriber on bus %d: %d wake-ups for %d notifications, want them coalesced", i, n, burst)
		}
	}

	// Coalescing must not wedge the channel: the next notification still
	// gets through once the subscriber has read.
	if err := h.first().Notify(t.Context(), id, 0); err != nil {
		t.Fatalf("Notify after the burst: %v", err)
	}
	for i, wake := range wakes {
		waitFor(t, wake, fmt.Sprintf("subscriber on bus %d after the burst was read", i))
	}
}

// testNotifyWakesEverySubscriber: a device may briefly have several
// streams (a takeover in progress); each of them is woken.
func testNotifyWakesEverySubscriber(t *testing.T, h *harness) {
	const perBus = 3
	id := newDeviceID()
	var wakes []<-chan uint64
	for _, b := range h.buses {
		for range perBus {
			wake, cancel := b.Subscribe(id)
			defer cancel()
			wakes = append(wakes, wake)
		}
	}
	if err := h.first().Notify(t.Context(), id, 0); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	for i, wake := range wakes {
		waitFor(t, wake, fmt.Sprintf("subscriber %d of bus %d", i%perBus, i/perBus))
	}
}

// testNotifyAcrossBuses: a send handled by one node wakes the stream
// served by another, for every pair of nodes.
func testNotifyAcrossBuses(t *testing.T, h *harness) {
	h.pairs(func(i, j int, a, b bus.Bus) {
		id := newDeviceID()
		wake, cancel := b.Subscribe(id)
		defer cancel()
		if err := a.Notify(t.Context(), id, 0); err != nil {
			t.Fatalf("bus %d: Notify: %v", i, err)
		}
		waitFor(t, wake, fmt.Sprintf("subscriber on bus %d after Notify on bus %d", j, i))
	})
}

// testSubscribeCancel: a cancelled subscription receives nothing more,
// its siblings still do, and cancelling twice is harmless.
func testSubscribeCancel(t *testing.T, h *harness) {
	id := newDeviceID()
	gone, cancelGone := h.last().Subscribe(id)
	kept, cancelKept := h.last().Subscribe(id)
	defer cancelKept()

	cancelGone()
	cancelGone()
	if err := h.first().Notify(t.Context(), id, 0); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	waitFor(t, kept, "the subscription left in place")
	staysQuiet(t, "the cancelled subscription", gone)

	cancelKept()
	cancelKept()
	if err := h.first().Notify(t.Context(), id, 0); err != nil {
		t.Fatalf("Notify after every subscription was cancelled: %v", err)
	}
	staysQuiet(t, "both cancelled subscriptions", gone, kept)

	// The device can be subscribed again after all its subscriptions went.
	again, cancelAgain := h.last().Subscribe(id)
	defer cancelAgain()
	if err := h.first().Notify(t.Context(), id, 0); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	waitFor(t, again, "a new subscription after the others were cancelled")
}

// testNotifyCarriesSeq: a wake-up carries the seq its notifier stored, on
// the notifier's bus and on every other; notifications that pile up arrive
// as the largest; and a notification without a seq arrives as
// bus.Unknown. A stream that trusts the value to skip a queue read must
// never be told less than what was stored, or it stalls.
func testNotifyCarriesSeq(t *testing.T, h *harness) {
	h.pairs(func(i, j int, a, b bus.Bus) {
		where := fmt.Sprintf("notified on bus %d, subscribed on bus %d", i, j)
		id := newDeviceID()
		wake, cancel := b.Subscribe(id)
		defer cancel()
		notify := func(seq uint64) {
			if err := a.Notify(t.Context(), id, seq); err != nil {
				t.Fatalf("%s: Notify(%d): %v", where, seq, err)
			}
		}
		expect := func(want uint64, what string) {
			t.Helper()
			select {
			case got := <-wake:
				if got != want {
					t.Errorf("%s: %s: woken with seq %d, want %d", where, what, got, want)
				}
			case <-time.After(timeout):
				t.Fatalf("%s: %s: not woken within %v", where, what, timeout)
			}
		}
		notify(41)
		expect(41, "one notification")
		// Several before the subscriber reads: they arrive merged or one
		// by one (across buses, each as it comes), never larger than was
		// notified, the last one 50. (Merging out of order is the hub's
		// own test: across buses, an earlier message could still be on its
		// way after the loop below ends.)
		notify(43)
		notify(50)
		deadline := time.Now().Add(timeout)
		for got := uint64(0); got != 50; {
			select {
			case got = <-wake:
				if got > 50 {
					t.Fatalf("%s: woken with seq %d, more than was notified", where, got)
				}
			case <-time.After(time.Until(deadline)):
				t.Fatalf("%s: seq 50 never arrived (last %d)", where, got)
			}
		}
		drain(wake)
		notify(0)
		expect(bus.Unknown, "a notification without a seq")
	})
}
