package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The server metrics the engine reads from each node's /metrics
// (docs/operations.md §4).
const (
	metricRSS        = "process_resident_memory_bytes"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricStackInuse = "go_memstats_stack_inuse_bytes"
	metricGoroutines = "go_goroutines"
	metricStreams    = "parleyd_streams"
	metricGCCount    = "go_gc_duration_seconds_count"
	metricCPU        = "process_cpu_seconds_total"
)

var scraped = []string{metricRSS, metricHeapInuse, metricStackInuse, metricGoroutines, metricStreams, metricGCCount, metricCPU}

// Limits on what a scrape reads: a node's /metrics is a few tens of KiB.
const (
	maxMetricsBytes = 4 << 20
	maxMetricsLine  = 64 << 10
	scrapeTimeout   = 10 * time.Second
)

// ErrBadMetrics reports a /metrics answer that is not Prometheus text.
var ErrBadMetrics = errors.New("loadgen: malformed metrics")

// ServerSample is one scrape of one node.
type ServerSample struct {
	RSS        int64 `json:"rss_bytes"`
	HeapInuse  int64 `json:"heap_inuse_bytes"`
	StackInuse int64 `json:"stack_inuse_bytes"` // goroutine stacks, outside the heap
	Goroutines int64 `json:"goroutines"`
	Streams    int64 `json:"streams"`
	// CPUSeconds is the process's user and system CPU time so far.
	CPUSeconds float64 `json:"cpu_seconds"`
	gcCount    int64
}

// ParseMetrics reads Prometheus text exposition format and returns the
// values of the named unlabelled samples it finds. Comment lines and
// other samples are skipped; a sample line that does not parse is
// ErrBadMetrics.
func ParseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(r, maxMetricsBytes))
	sc.Buffer(make([]byte, 0, 4096), maxMetricsLine)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// name[{labels}] value [timestamp]
		name, rest, ok := strings.Cut(line, " ")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: %q", ErrBadMetrics, truncate(line))
		}
		if !want[name] {
			continue // labelled samples ("name{...}") never match a bare name
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("%w: %q", ErrBadMetrics, truncate(line))
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %q", ErrBadMetrics, truncate(line))
		}
		out[name] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMetrics, err)
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// scrape reads one node's metrics.
func scrape(ctx context.Context, hc *http.Client, base string) (ServerSample, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return ServerSample{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return ServerSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ServerSample{}, fmt.Errorf("loadgen: %s/metrics: %s", base, resp.Status)
	}
	m, err := ParseMetrics(resp.Body, scraped...)
	if err != nil {
		return ServerSample{}, err
	}
	return ServerSample{
		RSS: int64(m[metricRSS]), HeapInuse: int64(m[metricHeapInuse]), StackInuse: int64(m[metricStackInuse]),
		Goroutines: int64(m[metricGoroutines]), Streams: int64(m[metricStreams]), gcCount: int64(m[metricGCCount]),
		CPUSeconds: m[metricCPU],
	}, nil
}
