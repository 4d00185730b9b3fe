package bustest

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/store"
)

// testClose: once closed, a bus refuses work with bus.ErrClosed, cancel
// funcs handed out before stay safe to call, and nothing wakes.
func testClose(t *testing.T, h *harness) {
	id := newDeviceID()
	var (
		wakes  []<-chan uint64
		claims []<-chan struct{}
	)
	var cancels []func()
	for _, b := range h.buses {
		wake, cancel := b.Subscribe(id)
		wakes = append(wakes, wake)
		cancels = append(cancels, cancel)
	}
	displaced, cancelClaim := claim(t, h.first(), id)
	claims = append(claims, displaced)
	cancels = append(cancels, cancelClaim)

	closeAll(t, h.buses)

	for i, b := range h.buses {
		if err := b.Notify(t.Context(), id, 0); !isClosed(err) {
			t.Errorf("bus %d: Notify after Close: err = %v, want bus.ErrClosed", i, err)
		}
		if _, _, err := b.Claim(t.Context(), id); !isClosed(err) {
			t.Errorf("bus %d: Claim after Close: err = %v, want bus.ErrClosed", i, err)
		}
		wake, cancel := b.Subscribe(id)
		if cancel == nil {
			t.Fatalf("bus %d: Subscribe after Close returned a nil cancel func", i)
		}
		wakes = append(wakes, wake)
		cancels = append(cancels, cancel)
		if err := b.Close(); err != nil {
			t.Errorf("bus %d: second Close: %v, want nil", i, err)
		}
	}
	for _, cancel := range cancels {
		cancel()
		cancel()
	}
	staysQuiet(t, "subscriptions after Close", wakes...)
	staysQuiet(t, "the claim held at Close", claims...)
}

// testCloseConcurrent: Close while other goroutines use the bus. Every
// call either works or fails with bus.ErrClosed, and none hangs.
func testCloseConcurrent(t *testing.T, h *harness) {
	const workers = 8
	ids := []store.DeviceID{newDeviceID(), newDeviceID()}
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			b := h.buses[g%len(h.buses)]
			id := ids[g%len(ids)]
			for {
				wake, cancel := b.Subscribe(id)
				err := b.Notify(t.Context(), id, 0)
				received(wake)
				cancel()
				if isClosed(err) {
					return
				}
				if err != nil {
					t.Errorf("Notify during Close: %v", err)
					return
				}
				_, release, err := b.Claim(t.Context(), id)
				if isClosed(err) {
					return
				}
				if err != nil {
					t.Errorf("Claim during Close: %v", err)
					return
				}
				release()
			}
		})
	}
	time.Sleep(10 * time.Millisecond)
	closeAll(t, h.buses)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("calls still running %v after Close", timeout)
	}
}

// testNoGoroutineLeak: cancelling subscriptions and claims releases
// whatever they started, and Close releases the rest.
func testNoGoroutineLeak(t *testing.T, h *harness) {
	before := runtime.NumGoroutine()
	buses := h.open()
	opened := runtime.NumGoroutine()

	var cancels []func()
	ids := []store.DeviceID{newDeviceID(), newDeviceID(), newDeviceID()}
	for i, b := range buses {
		for _, id := range ids {
			wake, cancel := b.Subscribe(id)
			cancels = append(cancels, cancel)
			if err := buses[(i+1)%len(buses)].Notify(t.Context(), id, 0); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			waitFor(t, wake, "subscriber")
		}
		_, cancel := claim(t, b, ids[0])
		cancels = append(cancels, cancel)
	}
	for _, cancel := range cancels {
		cancel()
	}
	waitGoroutines(t, opened, "after every subscription and claim was cancelled")

	// Close with a subscription and a claim still open: Close, not cancel,
	// must release them.
	for _, b := range buses {
		_, cancelSub := b.Subscribe(ids[1])
		defer cancelSub()
		_, cancelClaim := claim(t, b, ids[2])
		defer cancelClaim()
	}
	closeAll(t, buses)
	waitGoroutines(t, before, "after Close")
}

// testStress runs notifying, subscribing, cancelling and claiming from
// many goroutines on a few devices (run it with -race), then checks that
// the claims settled: at most one uncancelled claim per device survives
// undisplaced, and a fresh claim displaces it.
func testStress(t *testing.T, h *harness) {
	const (
		workers = 16
		rounds  = 200
		devices = 4
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ids := make([]store.DeviceID, devices)
	for i := range ids {
		ids[i] = newDeviceID()
	}

	type held struct {
		device    int
		displaced <-chan struct{}
		cancel    func()
	}
	var (
		mu   sync.Mutex
		kept []held   // claims left in place for the final check
		idle []func() // subscriptions that are never read
	)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			pick := func() bus.Bus { return h.buses[rng.IntN(len(h.buses))] }
			for range rounds {
				d := rng.IntN(devices)
				id := ids[d]
				switch rng.IntN(5) {
				case 0:
					if err := pick().Notify(t.Context(), id, 0); err != nil {
						t.Errorf("Notify: %v", err)
						return
					}
				case 1:
					wake, cancel := pick().Subscribe(id)
					if err := pick().Notify(t.Context(), id, 0); err != nil {
						t.Errorf("Notify: %v", err)
						cancel()
						return
					}
					select {
					case <-wake:
					case <-time.After(timeout):
						t.Errorf("subscriber not woken within %v", timeout)
					}
					cancel()
					cancel()
				case 2:
					_, cancel := pick().Subscribe(id)
					mu.Lock()
					idle = append(idle, cancel)
					mu.Unlock()
				case 3:
					_, cancel, err := pick().Claim(t.Context(), id)
					if err != nil {
						t.Errorf("Claim: %v", err)
						return
					}
					cancel()
					cancel()
				case 4:
					displaced, cancel, err := pick().Claim(t.Context(), id)
					if err != nil {
						t.Errorf("Claim: %v", err)
						return
					}
					mu.Lock()
					kept = append(kept, held{d, displaced, cancel})
					mu.Unlock()
				}
			}
		})
	}
	within(t, "the stress workers", wg.Wait)
	if t.Failed() {
		t.FailNow() // workers may still run; the state is not worth checking
	}
	defer func() {
		for _, c := range idle {
			c()
		}
		for _, k := range kept {
			k.cancel()
		}
	}()

	time.Sleep(quiet) // let a networked engine deliver the last displacements
	survivors := make([]*held, devices)
	for i := range kept {
		k := &kept[i]
		if received(k.displaced) {
			continue
		}
		if s := survivors[k.device]; s != nil {
			t.Fatalf("device %d: two claims survived the stress undisplaced", k.device)
		}
		survivors[k.device] = k
	}
	for d, id := range ids {
		fresh, cancel := claim(t, h.first(), id)
		defer cancel()
		if s := survivors[d]; s != nil {
			waitFor(t, s.displaced, fmt.Sprintf("device %d: the claim that survived the stress, after a fresh Claim", d))
		}
		staysQuiet(t, fmt.Sprintf("device %d: the fresh claim", d), fresh)
	}
}
