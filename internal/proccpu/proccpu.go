// Package proccpu reads how much of its CPU the process uses — the CPU
// time it has used, and whether goroutines wait for a core — for the
// SQLite writer's choice of when to wait for a fuller batch
// (internal/store/sqlite) and for benchmarks that report CPU per
// operation.
package proccpu

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// Busy tracks whether the process has lately used nearly all the CPU it
// may (GOMAXPROCS cores). The zero value is ready; it is not safe for
// concurrent use.
type Busy struct {
	at   time.Time
	used time.Duration
	busy bool
	read func() time.Duration // Used, unless a test says otherwise
}

// Window is how long Busy measures over before it judges again.
const Window = 50 * time.Millisecond

// Saturated is the share of GOMAXPROCS cores the process must use over a
// window to become busy, and Relaxed the share below which a busy process
// stops being busy. The gap keeps the judgement from flapping when what
// the caller does about a busy process (the SQLite writer's waiting for
// fuller batches) itself lowers the load.
const (
	Saturated = 0.8
	Relaxed   = 0.6
)

// Now reports whether the process is busy, as judged over the last
// completed window ending at or before now. Where Used is not measured it
// reports false.
func (b *Busy) Now(now time.Time) bool {
	if elapsed := now.Sub(b.at); elapsed >= Window {
		read := b.read
		if read == nil {
			read = Used
		}
		used := read()
		share := Saturated
		if b.busy {
			share = Relaxed
		}
		b.busy = !b.at.IsZero() && float64(used-b.used) >= share*float64(runtime.GOMAXPROCS(0))*float64(elapsed)
		b.at, b.used = now, used
	}
	return b.busy
}

// RunQueue reads the number of runnable goroutines. The zero value is
// ready; it is not safe for concurrent use.
type RunQueue struct {
	sample []metrics.Sample
}

// Runnable reports how many goroutines are ready to run but not running:
// work that a core given up by the caller would take on. A caller that
// waits for others' work only while some is runnable keeps its core busy
// and never leaves it idle. The count comes from runtime/metrics and is
// approximate: it leaves out goroutines whose network I/O is ready but not
// yet polled, and a run queue changing under the read.
func (r *RunQueue) Runnable() uint64 {
	if r.sample == nil {
		r.sample = []metrics.Sample{{Name: runnableMetric}}
	}
	metrics.Read(r.sample)
	if r.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0 // not measured by this runtime: nothing to wait for
	}
	return r.sample[0].Value.Uint64()
}

const runnableMetric = "/sched/goroutines/runnable:goroutines"
