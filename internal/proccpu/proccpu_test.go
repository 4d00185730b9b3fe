package proccpu

import (
	"runtime"
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
