// Package bustest is the conformance suite for internal/bus engines
// (docs/server.md §5, DESIGN §6: one suite runs against every engine).
//
// An engine's test file is one call. newBus returns one or more buses that
// share one backing: the in-process engine may return the same bus twice,
// a networked engine returns several connections to one server, each
// standing for a parleyd node:
//
//	func TestConformance(t *testing.T) {
//		bustest.Run(t, func(*testing.T) []bus.Bus { b := mem.New(); return []bus.Bus{b, b} })
//	}
//
// The suite checks what bus.Bus documents, plus a few choices the
// documentation leaves open that every engine must agree on so the relay
// behaves the same on each; those are marked "suite:" below:
//
//   - suite: a subscription receives every Notify made, on any bus of the
//     backing, after Subscribe returned; likewise a Claim displaces every
//     holder whose Claim returned before it began. Without this the relay,
//     which subscribes and then reads the queue, could miss mail that
//     arrives in between.
//   - suite: Notify never blocks on a subscriber that does not read.
//   - suite: cancel funcs may be called more than once, and after Close.
//   - suite: cancelling a claim fires nothing, and a displaced holder's
//     late cancel does not release the claim that displaced it.
//   - suite: a Claim whose context is already done fails with the
//     context's error and displaces no one.
//   - suite: after Close, Notify and Claim fail with bus.ErrClosed,
//     Subscribe returns a channel that never receives, and Close returns
//     nil again. Close closes no channel it handed out.
//
// Duplicate or spurious wake-ups are allowed (they cost a queue read), so
// the suite only checks that a notification for one device does not wake
// another. Absence is checked by waiting quiet, so a networked engine must
// deliver within that time on loopback.
//
// Subtests run one after another, never in parallel: the goroutine-leak
// check counts the goroutines of the whole process. newBus must not leave
// goroutines running once the buses it returned are closed; start a
// shared server once, before calling Run. Each subtest uses fresh random
// device ids, so a server shared by subtests cannot leak one subtest's
// notifications into another.
package bustest

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

const (
	// timeout bounds the wait for something that must happen.
	timeout = 5 * time.Second
	// quiet is how long the suite waits before deciding that something
	// did not happen.
	quiet = 100 * time.Millisecond
	// settle bounds the wait for goroutines to exit.
	settle = 2 * time.Second
)

// Run runs the conformance suite. newBus is called once per subtest (twice
// by the goroutine-leak check) and returns buses sharing one fresh or
// shared backing; it reports its own failures through t. Run closes every
// bus it is given, possibly more than once.
func Run(t *testing.T, newBus func(t *testing.T) []bus.Bus) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"NotifyWakesOnlyThatDevice", testNotifyWakesOnlyThatDevice},
		{"NotifyWithoutSubscribers", testNotifyWithoutSubscribers},
		{"NotifyCoalescesWithoutBlocking", testNotifyCoalescesWithoutBlocking},
		{"NotifyWakesEverySubscriber", testNotifyWakesEverySubscriber},
		{"NotifyAcrossBuses", testNotifyAcrossBuses},
		{"NotifyCarriesSeq", testNotifyCarriesSeq},
		{"SubscribeCancel", testSubscribeCancel},
		{"ClaimDisplacesPrevious", testClaimDisplacesPrevious},
		{"ClaimCancelReleases", testClaimCancelReleases},
		{"ClaimStaleCancel", testClaimStaleCancel},
		{"ClaimDevicesIndependent", testClaimDevicesIndependent},
		{"ClaimCancelledContext", testClaimCancelledContext},
		{"Close", testClose},
		{"CloseConcurrent", testCloseConcurrent},
		{"NoGoroutineLeak", testNoGoroutineLeak},
		{"Stress", testStress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, newBus: newBus}
			h.buses = h.open()
			tc.fn(t, h)
		})
	}
}

// harness is one subtest's buses.
type harness struct {
	t      *testing.T
	newBus func(t *testing.T) []bus.Bus
	buses  []bus.Bus
}

// open calls newBus and closes the buses it returns when the test ends.
func (h *harness) open() []bus.Bus {
	h.t.Helper()
	buses := h.newBus(h.t)
	if len(buses) == 0 {
		h.t.Fatal("newBus returned no buses")
	}
	for i, b := range buses {
		if b == nil {
			h.t.Fatalf("newBus returned a nil bus at index %d", i)
		}
	}
	h.t.Cleanup(func() {
		for i, b := range buses {
			within(h.t, fmt.Sprintf("bus %d: Close at cleanup", i), func() {
				if err := b.Close(); err != nil {
					h.t.Errorf("bus %d: Close at cleanup: %v", i, err)
				}
			})
		}
	})
	return buses
}

// closeAll closes every bus, checking that Close succeeds.
func closeAll(t *testing.T, buses []bus.Bus) {
	t.Helper()
	for i, b := range buses {
		within(t, fmt.Sprintf("bus %d: Close", i), func() {
			if err := b.Close(); err != nil {
				t.Errorf("bus %d: Close: %v", i, err)
			}
		})
	}
	if t.Failed() {
		t.FailNow()
	}
}

// within runs fn and fails t if it has not returned after timeout. An
// engine that deadlocks then fails with a message naming the call instead
// of hanging the test binary (fn's goroutine is abandoned).
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Errorf("%s: still running after %v", what, timeout)
	}
}

// first and last are the buses the single-pair tests use: a notifier on
// one node and a subscriber on another, when there are several.
func (h *harness) first() bus.Bus { return h.buses[0] }
func (h *harness) last() bus.Bus  { return h.buses[len(h.buses)-1] }

// pairs calls fn for every ordered pair of buses, a bus with itself
// included.
func (h *harness) pairs(fn func(i, j int, a, b bus.Bus)) {
	for i, a := range h.buses {
		for j, b := range h.buses {
			fn(i, j, a, b)
		}
	}
}

func newDeviceID() store.DeviceID {
	var id store.DeviceID
	primitives.Random(id[:])
	return id
}

// waitFor fails t unless ch receives within timeout.
func waitFor[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("%s: nothing received within %v", what, timeout)
	}
}

// received reports whether ch has a value ready, taking it.
func received[T any](ch <-chan T) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// staysQuiet waits quiet, then fails t if any of chans has received.
func staysQuiet[T any](t *testing.T, what string, chans ...<-chan T) {
	t.Helper()
	time.Sleep(quiet)
	for i, ch := range chans {
		if received(ch) {
			t.Errorf("%s: channel %d received, want nothing", what, i)
		}
	}
}

// drain takes every value ready on ch and returns how many there were.
func drain[T any](ch <-chan T) int {
	n := 0
	for received(ch) {
		n++
	}
	return n
}

// isClosed reports whether err is bus.ErrClosed.
func isClosed(err error) bool { return errors.Is(err, bus.ErrClosed) }

// waitGoroutines waits until at most want goroutines run, failing t with a
// dump of them after settle.
func waitGoroutines(t *testing.T, want int, when string) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%s: %d goroutines, want at most %d after %v:\n%s", when, runtime.NumGoroutine(), want, settle, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
