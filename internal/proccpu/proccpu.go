// Package proccpu reads the CPU time the process has used, for the SQLite
// writer's choice of when to wait for a fuller batch
// (internal/store/sqlite) and for benchmarks that report CPU per
// operation.
package proccpu

import (
	"runtime"
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
