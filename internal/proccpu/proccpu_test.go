package proccpu

import (
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestBusy: the judgement over each window, on readings the test makes up.
// A wrong one either way makes the SQLite writer hold sends back while the
// CPU idles, or commit tiny batches while it is saturated.
func TestBusy(t *testing.T) {
	cores := time.Duration(runtime.GOMAXPROCS(0))
	var used time.Duration
	b := Busy{read: func() time.Duration { return used }}
	t0 := time.Unix(1000, 0)
	if b.Now(t0) {
		t.Fatal("busy before any window was measured")
	}
	steps := []struct {
		after time.Duration // since the previous step
		spent time.Duration // CPU used in it
		want  bool
	}{
		{Window, 0, false},                               // idle
		{Window, cores * Window, true},                   // every core, all the time
		{Window / 2, 0, true},                            // within the window: the last judgement stands
		{Window / 2, 0, false},                           // the window (now 2×0.5) was idle after all
		{2 * Window, cores * 2 * Window * 9 / 10, true},  // 90%: busy
		{2 * Window, cores * 2 * Window * 7 / 10, true},  // 70%: stays busy (above Relaxed)
		{2 * Window, cores * 2 * Window * 5 / 10, false}, // 50%: relaxed
		{2 * Window, cores * 2 * Window * 7 / 10, false}, // 70%: not busy again (below Saturated)
		{Window, cores * Window * 8 / 10, true},          // 80%
	}
	at := t0
	for i, s := range steps {
		at = at.Add(s.after)
		used += s.spent
		if got := b.Now(at); got != s.want {
			t.Errorf("step %d: busy = %v, want %v", i, got, s.want)
		}
	}
}

// TestUsedGrows: where the system reports CPU time, spinning for a while
// shows in it.
func TestUsedGrows(t *testing.T) {
	before := Used()
	if before == 0 {
		t.Skip("this system does not report CPU time")
	}
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
	}
	if after := Used(); after <= before {
		t.Errorf("Used went from %v to %v after spinning for 50 ms", before, after)
	}
}

// TestRunnable: goroutines that yield to each other, more of them than
// cores, show as runnable; a process whose other goroutines all block shows
// none. A count stuck at zero would let the SQLite writer commit tiny
// batches on a saturated server; one never zero would hold writes back
// while a core idles.
func TestRunnable(t *testing.T) {
	var q RunQueue
	var most uint64
	func() {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		defer func() { close(stop); wg.Wait() }()
		for range 4 * runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						runtime.Gosched()
					}
				}
			})
		}
		for range 100 {
			most = max(most, q.Runnable())
			runtime.Gosched()
		}
	}()
	if want := uint64(runtime.GOMAXPROCS(0)); most < want {
		t.Errorf("with %d goroutines yielding to each other, at most %d read as runnable, want at least %d", 4*runtime.GOMAXPROCS(0), most, want)
	}
	least := uint64(math.MaxUint64)
	for range 100 {
		least = min(least, q.Runnable())
	}
	if least != 0 {
		t.Errorf("with every other goroutine blocked, at least %d read as runnable in each of 100 reads, want 0", least)
	}
}
