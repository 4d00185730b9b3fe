package ackbatch

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a send function that keeps each batch with the fake time it
// went out.
type recorder struct {
	mu      sync.Mutex
	start   time.Time
	batches [][]uint64
	at      []time.Duration
}

func (r *recorder) send(seqs []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, slices.Clone(seqs))
	r.at = append(r.at, time.Since(r.start))
}

func (r *recorder) got() ([][]uint64, []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches), slices.Clone(r.at)
}

func TestFullBatchGoesOutAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{start: time.Now()}
		b := New(3, time.Second, r.send)
		defer b.Close()
		for s := uint64(1); s <= 7; s++ {
			b.Add(s)
		}
		synctest.Wait()
		got, at := r.got()
		want := [][]uint64{{1, 2, 3}, {4, 5, 6}}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("batches %v, want %v", got, want)
		}
		for _, d := range at {
			if d != 0 {
				t.Fatalf("a full batch waited %v", d)
			}
		}
		// 7 waits for the delay.
		time.Sleep(time.Second)
		synctest.Wait()
		got, at = r.got()
		if len(got) != 3 || !slices.Equal(got[2], []uint64{7}) || at[2] != time.Second {
			t.Fatalf("after the delay: %v at %v, want [7] at 1s", got, at)
		}
	})
}

func TestDelayCountsFromTheOldestPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{start: time.Now()}
		b := New(100, 100*time.Millisecond, r.send)
		defer b.Close()
		// A steady trickle, one every 30 ms: an idle rule would never
		// fire; the delay must still bound how long the first one waits.
		for s := uint64(1); s <= 10; s++ {
			b.Add(s)
			time.Sleep(30 * time.Millisecond)
		}
		synctest.Wait()
		got, at := r.got()
		if len(got) < 2 {
			t.Fatalf("batches %v: a trickle was never acknowledged", got)
		}
		if !slices.Equal(got[0], []uint64{1, 2, 3, 4}) || at[0] != 100*time.Millisecond {
			t.Fatalf("first batch %v at %v, want [1 2 3 4] at 100ms", got[0], at[0])
		}
	})
}

func TestFlushWaitsForEveryEarlierBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		var sent []uint64
		b := New(2, time.Hour, func(seqs []uint64) {
			<-release
			mu.Lock()
			sent = append(sent, seqs...)
			mu.Unlock()
		})
		defer b.Close()
		b.Add(1)
		b.Add(2) // full: handed off, blocked in send
		b.Add(3)
		flushed := make(chan struct{})
		go func() {
			b.Flush()
			close(flushed)
		}()
		synctest.Wait()
		select {
		case <-flushed:
			t.Fatal("Flush returned before its batches were sent")
		default:
		}
		close(release)
		<-flushed
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(sent, []uint64{1, 2, 3}) {
			t.Fatalf("sent %v, want [1 2 3] in order", sent)
		}
	})
}

func TestCloseSendsWhatIsPendingAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{start: time.Now()}
		b := New(10, time.Hour, r.send)
		b.Add(1)
		b.Add(2)
		b.Close()
		got, _ := r.got()
		if len(got) != 1 || !slices.Equal(got[0], []uint64{1, 2}) {
			t.Fatalf("Close sent %v, want [[1 2]]", got)
		}
		// After Close nothing is sent and nothing panics.
		b.Add(3)
		b.Flush()
		b.Close()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if got, _ := r.got(); len(got) != 1 {
			t.Fatalf("sent after Close: %v", got)
		}
	})
}

func TestConcurrentAddsLoseNothing(t *testing.T) {
	var mu sync.Mutex
	seen := map[uint64]int{}
	b := New(7, time.Millisecond, func(seqs []uint64) {
		mu.Lock()
		defer mu.Unlock()
		if len(seqs) > 7 {
			t.Errorf("batch of %d, max 7", len(seqs))
		}
		for _, s := range seqs {
			seen[s]++
		}
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				b.Add(uint64(g*1000 + i))
			}
		})
	}
	wg.Wait()
	b.Close()
	if len(seen) != 8*500 {
		t.Fatalf("%d distinct numbers acknowledged, want %d", len(seen), 8*500)
	}
	for s, n := range seen {
		if n != 1 {
			t.Fatalf("%d acknowledged %d times", s, n)
		}
	}
}
