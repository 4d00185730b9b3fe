package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWriterWaitsForFullerBatchesOnlyWhenBusy: with the process busy,
// writers in parallel and other goroutines waiting for a core, writes that
// arrive a little apart share one commit (each commit costs an fsync that a
// busy process needs for its senders). With CPU to spare, or with nothing
// else ready to run, they are committed as they come: waiting would gain no
// CPU for anyone and only leave a core idle.
func TestWriterWaitsForFullerBatchesOnlyWhenBusy(t *testing.T) {
	for _, c := range []struct {
		name      string
		busy      bool // what the writer's CPU reading says
		otherWork bool // goroutines other than the writer ready to run
		gather    bool
	}{
		{"busy", true, true, true},
		{"busy/nothing-else-runnable", true, false, false},
		{"not-busy", false, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(filepath.Join(t.TempDir(), "linger.db"), WithLinger(200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Set before any write: the writer reads it in its goroutine,
			// and the first op below orders this write before that read.
			s.w.saturated = func(time.Time) bool { return c.busy }
			if c.otherWork {
				stop := keepCoresBusy()
				defer stop()
			}
			ctx := context.Background()
			put := func(name string) error {
				return s.write(ctx, false, func(t *wtx) error {
					_, err := t.conn.ExecContext(t.ctx, "INSERT INTO secrets (name, value) VALUES (?, x'01')", name)
					return err
				})
			}
			// Two writes in one batch (queued while a third holds the
			// writer), so that the next batch may wait.
			started, release := make(chan struct{}), make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				if err := s.write(ctx, false, func(*wtx) error { close(started); <-release; return nil }); err != nil {
					t.Error(err)
				}
			})
			<-started
			for i := range 2 {
				wg.Go(func() {
					if err := put(fmt.Sprint("pair", i)); err != nil {
						t.Error(err)
					}
				})
			}
			for len(s.w.ops) < 2 {
				time.Sleep(time.Millisecond)
			}
			close(release)
			wg.Wait()
			commits0 := s.w.commits.Load()
			// Then five writes 10 ms apart: well within the gap of a
			// 200 ms linger (40 ms).
			const writes = 5
			for i := range writes {
				wg.Go(func() {
					if err := put(fmt.Sprint("spread", i)); err != nil {
						t.Error(err)
					}
				})
				time.Sleep(10 * time.Millisecond)
			}
			wg.Wait()
			commits := s.w.commits.Load() - commits0
			if c.gather && commits > 2 {
				t.Errorf("%d writes arriving 10 ms apart took %d commits, want them gathered (at most 2)", writes, commits)
			}
			if !c.gather && commits < writes-1 {
				t.Errorf("%d writes arriving 10 ms apart took %d commits, want each committed as it came", writes, commits)
			}
		})
	}
}

// keepCoresBusy starts goroutines, four per core, that compute and yield
// in turn, so that whenever the writer runs others are ready to run, as on
// a server whose senders outnumber its cores. (With one per core, the
// approximate count of runnable goroutines now and then read zero under the
// race detector: one run in twenty failed.) It returns a function
// that stops them and waits until they have.
func keepCoresBusy() (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for !done.Load() {
				for start := time.Now(); time.Since(start) < 50*time.Microsecond; {
				}
				runtime.Gosched()
			}
		})
	}
	return func() {
		done.Store(true)
		wg.Wait()
	}
}
