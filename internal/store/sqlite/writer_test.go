package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestWriterWaitsForFullerBatchesOnlyWhenBusy: with the process busy and
// writers in parallel, writes that arrive a little apart share one commit
// (each commit costs an fsync that a busy process needs for its senders);
// with CPU to spare they are committed as they come, so that no write waits
// for a batch that gains it nothing.
func TestWriterWaitsForFullerBatchesOnlyWhenBusy(t *testing.T) {
	for _, busy := range []bool{true, false} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			s, err := Open(filepath.Join(t.TempDir(), "linger.db"), WithLinger(200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Set before any write: the writer reads it in its goroutine,
			// and the first op below orders this write before that read.
			s.w.saturated = func(time.Time) bool { return busy }
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
			if busy && commits > 2 {
				t.Errorf("busy: %d writes arriving 10 ms apart took %d commits, want them gathered (at most 2)", writes, commits)
			}
			if !busy && commits < writes-1 {
				t.Errorf("not busy: %d writes arriving 10 ms apart took %d commits, want each committed as it came", writes, commits)
			}
		})
	}
}
