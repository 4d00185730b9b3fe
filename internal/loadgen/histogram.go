package loadgen

import (
	"math"
	"sync/atomic"
	"time"
)

// histogram records durations in logarithmic buckets, each histPrecision
// wider than the one before, so that quantiles come out within
// histPrecision/2 of the truth in constant memory, however long the run.
// It is safe for concurrent use without a lock.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Int64 // ns
	max    atomic.Int64 // ns
}

const (
	// histPrecision is the relative width of a bucket.
	histPrecision = 0.01
	// histMin is the upper bound of the first bucket: everything faster
	// counts as histMin.
	histMin = time.Microsecond
	// histBuckets covers histMin to about an hour; slower goes in the last.
	histBuckets = 2300
)

var histLogBase = math.Log1p(histPrecision)

func histBucket(d time.Duration) int {
	if d <= histMin {
		return 0
	}
	i := int(math.Log(float64(d)/float64(histMin))/histLogBase) + 1
	return min(i, histBuckets-1)
}

// histValue is a bucket's representative: the geometric middle of its
// bounds.
func histValue(i int) time.Duration {
	if i == 0 {
		return histMin
	}
	return time.Duration(float64(histMin) * math.Exp((float64(i)-0.5)*histLogBase))
}

func (h *histogram) record(d time.Duration) {
	d = max(d, 0)
	h.counts[histBucket(d)].Add(1)
	h.n.Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

// quantile returns the q-quantile (nearest rank), or 0 without samples.
// The answer never exceeds the largest sample, and the 1-quantile is
// the largest sample.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	if rank == n {
		return time.Duration(h.max.Load())
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(histValue(i), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

func (h *histogram) mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / int64(n))
}
