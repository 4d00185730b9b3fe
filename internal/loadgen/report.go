package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Progress is a snapshot of a running load, for a progress display.
type Progress struct {
	Elapsed     time.Duration
	Phase       string // "sending", "draining"
	Sent        int64  // messages whose send was acknowledged
	Failed      int64  // messages whose send failed for good
	Delivered   int64  // envelopes received (first delivery)
	Duplicates  int64  // redeliveries absorbed by de-duplication
	Acked       int64  // envelopes acknowledged
	Outstanding int64  // acknowledged sends not yet received, per device
	Errors      int64  // failed calls, all kinds
	Streams     int64  // delivery streams open
	P50, P99    time.Duration
}

// String is the one-line progress display.
func (p Progress) String() string {
	return fmt.Sprintf("%6.1fs %-9s sent %d  delivered %d  acked %d  in flight %d  dup %d  errors %d  streams %d  p50 %s  p99 %s",
		p.Elapsed.Seconds(), p.Phase, p.Sent, p.Delivered, p.Acked, p.Outstanding, p.Duplicates, p.Errors, p.Streams,
		fmtMs(p.P50), fmtMs(p.P99))
}

// Report is what a run measured. Rates are per second of the phase they
// belong to: sends over the send phase, deliveries and acks over the send
// phase plus the drain (Elapsed).
type Report struct {
	URLs           []string `json:"urls"`
	Users          int      `json:"users"`
	Devices        int      `json:"devices"`
	Connections    int64    `json:"connections"` // TCP connections opened
	Protocol       string   `json:"protocol"`    // HTTP/2 or HTTP/1.1
	EnvelopeSize   int      `json:"envelope_size"`
	TargetRate     float64  `json:"target_rate"` // sends/s; 0: as fast as answered
	SendPhaseSec   float64  `json:"send_phase_seconds"`
	ElapsedSec     float64  `json:"elapsed_seconds"`
	DrainTimedOut  bool     `json:"drain_timed_out"`
	SweepFailed    int64    `json:"sweep_failed"`   // devices whose final sweep failed
	Sent           int64    `json:"sent"`           // messages acknowledged by the server
	SentEnvelopes  int64    `json:"sent_envelopes"` // their envelopes
	FailedSends    int64    `json:"failed_sends"`   // messages given up on
	Delivered      int64    `json:"delivered"`      // envelopes received, after de-duplication
	Duplicates     int64    `json:"duplicates"`     // redeliveries de-duplication absorbed
	Acked          int64    `json:"acked"`          // envelopes acknowledged to the server
	Lost           int64    `json:"lost"`           // acknowledged sends a recipient device never received
	Unacknowledged int64    `json:"delivered_unacknowledged"`
	Corrupt        int64    `json:"corrupt"` // envelopes that were not the payload sent

	SentPerSec      float64 `json:"sent_per_second"`
	DeliveredPerSec float64 `json:"delivered_per_second"`
	AckedPerSec     float64 `json:"acked_per_second"`

	// ServerCPUPerEnvelope is the CPU time of every node, from the start
	// sample to the end sample, per envelope delivered, in microseconds:
	// the server's own cost, without the load tool's. Zero when a node
	// lacks samples or restarted (its counter went back).
	ServerCPUPerEnvelope float64 `json:"server_cpu_us_per_envelope"`

	Latency Latency          `json:"latency_ms"`
	Errors  map[string]int64 `json:"errors"`
	Servers []ServerMemory   `json:"servers"`
}

// Latency is end to end, from the start of a send (before its first
// attempt) to the first delivery on one recipient device, in
// milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ServerMemory is one node's memory before the send phase, at its peak
// (sampled once a second) and at the end.
type ServerMemory struct {
	URL   string        `json:"url"`
	Start *ServerSample `json:"start,omitempty"`
	Peak  *ServerSample `json:"peak,omitempty"`
	End   *ServerSample `json:"end,omitempty"`
}

// memoryLog samples every node's memory.
type memoryLog struct {
	mu      sync.Mutex
	servers []ServerMemory
}

func newMemoryLog(urls []string) *memoryLog {
	m := &memoryLog{servers: make([]ServerMemory, len(urls))}
	for i, u := range urls {
		m.servers[i].URL = u
	}
	return m
}

// sample scrapes every node; the first successful sample of a node is its
// start, the last its end. A node that does not answer (killed, in a
// chaos test) is counted as a "metrics" error; a scrape cut short because
// ctx ended (the periodic sampler stopped at the end of a run) is not.
func (m *memoryLog) sample(ctx context.Context, hc *http.Client, ec *errorCounts, start bool) {
	for i := range m.servers {
		s, err := scrape(ctx, hc, m.servers[i].URL)
		if err != nil && ctx.Err() != nil {
			return
		}
		if err != nil {
			ec.addKind("metrics: scrape failed")
			continue
		}
		m.mu.Lock()
		sm := &m.servers[i]
		if start || sm.Start == nil {
			c := s
			sm.Start = &c
		}
		c := s
		sm.End = &c
		if sm.Peak == nil {
			p := s
			sm.Peak = &p
		} else {
			sm.Peak.RSS = max(sm.Peak.RSS, s.RSS)
			sm.Peak.HeapInuse = max(sm.Peak.HeapInuse, s.HeapInuse)
			sm.Peak.Goroutines = max(sm.Peak.Goroutines, s.Goroutines)
			sm.Peak.Streams = max(sm.Peak.Streams, s.Streams)
		}
		m.mu.Unlock()
	}
}

func (m *memoryLog) snapshot() []ServerMemory {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.servers)
}

func (ec *errorCounts) addKind(kind string) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.m == nil {
		ec.m = map[string]int64{}
	}
	ec.m[kind]++
}

func (e *Engine) report(sendPhase, elapsed time.Duration, mem *memoryLog) *Report {
	r := &Report{
		URLs: e.cfg.URLs, Users: e.cfg.Users, Devices: len(e.devices), Connections: e.dials.Load(),
		Protocol:     protocolName(e.cfg.HTTP1),
		EnvelopeSize: e.cfg.EnvelopeSize, TargetRate: e.cfg.Rate,
		SendPhaseSec: sendPhase.Seconds(), ElapsedSec: elapsed.Seconds(),
		Sent: e.sent.Load(), SentEnvelopes: e.sentEnvelopes.Load(), FailedSends: e.failed.Load(),
		Delivered: e.delivered.Load(), Duplicates: e.duplicates.Load(), Acked: e.acked.Load(),
		Corrupt: e.corrupt.Load(), SweepFailed: e.sweepFailed.Load(),
		Errors: e.errs.snapshot(), Servers: mem.snapshot(),
	}
	r.DrainTimedOut = e.drainTimedOut
	for _, d := range e.devices {
		d.mu.Lock()
		for _, st := range d.inbox {
			switch acked, n := st&stateSendAcked != 0, st&stateDeliveries; {
			case acked && n == 0:
				r.Lost++
			case !acked && n > 0:
				r.Unacknowledged++
			}
		}
		d.mu.Unlock()
	}
	if s := sendPhase.Seconds(); s > 0 {
		r.SentPerSec = float64(r.Sent) / s
	}
	if s := elapsed.Seconds(); s > 0 {
		r.DeliveredPerSec = float64(r.Delivered) / s
		r.AckedPerSec = float64(r.Acked) / s
	}
	r.ServerCPUPerEnvelope = serverCPUPerEnvelope(r.Servers, r.Delivered)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.Latency = Latency{
		P50: ms(e.lat.quantile(0.50)), P95: ms(e.lat.quantile(0.95)), P99: ms(e.lat.quantile(0.99)),
		Max: ms(time.Duration(e.lat.max.Load())), Mean: ms(e.lat.mean()),
	}
	return r
}

// protocolName names what the transports speak.
func protocolName(http1 bool) string {
	if http1 {
		return "HTTP/1.1"
	}
	return "HTTP/2"
}

// serverCPUPerEnvelope divides the nodes' CPU time by the envelopes
// delivered, in microseconds; 0 if it cannot be known.
func serverCPUPerEnvelope(servers []ServerMemory, delivered int64) float64 {
	if delivered <= 0 {
		return 0
	}
	var cpu float64
	for _, s := range servers {
		if s.Start == nil || s.End == nil || s.End.CPUSeconds < s.Start.CPUSeconds {
			return 0
		}
		cpu += s.End.CPUSeconds - s.Start.CPUSeconds
	}
	return cpu / float64(delivered) * 1e6
}

func fmtMs(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	p("servers\t%s", strings.Join(r.URLs, " "))
	p("devices\t%d (%d accounts), %d %s connections", r.Devices, r.Users, r.Connections, r.Protocol)
	rate := "as fast as answered"
	if r.TargetRate > 0 {
		rate = fmt.Sprintf("%.0f/s", r.TargetRate)
	}
	p("load\t%d-byte envelopes, target %s, send phase %.1fs, %.1fs to last delivery", r.EnvelopeSize, rate, r.SendPhaseSec, r.ElapsedSec)
	p("")
	p("sent\t%d messages (%d envelopes)\t%.0f/s", r.Sent, r.SentEnvelopes, r.SentPerSec)
	p("delivered\t%d envelopes\t%.0f/s", r.Delivered, r.DeliveredPerSec)
	p("acked\t%d envelopes\t%.0f/s", r.Acked, r.AckedPerSec)
	p("latency\tp50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms  mean %.1f ms",
		r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max, r.Latency.Mean)
	if r.ServerCPUPerEnvelope > 0 {
		p("server CPU\t%.0f µs per delivered envelope (every node, without the load tool)", r.ServerCPUPerEnvelope)
	}
	p("")
	p("lost\t%d\t(acknowledged sends a recipient device never received)", r.Lost)
	p("duplicates\t%d\t(redeliveries absorbed by de-duplication)", r.Duplicates)
	p("failed sends\t%d", r.FailedSends)
	if r.Unacknowledged > 0 {
		p("delivered, send unacknowledged\t%d", r.Unacknowledged)
	}
	if r.Corrupt > 0 {
		p("corrupt\t%d", r.Corrupt)
	}
	if r.DrainTimedOut {
		p("drain\ttimed out")
	}
	if r.SweepFailed > 0 {
		p("sweep failed\t%d devices", r.SweepFailed)
	}
	kinds := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	if len(kinds) == 0 {
		p("errors\tnone")
	}
	for i, k := range kinds {
		label := ""
		if i == 0 {
			label = "errors"
		}
		p("%s\t%s: %d", label, k, r.Errors[k])
	}
	p("")
	for _, s := range r.Servers {
		if s.Start == nil || s.End == nil {
			p("memory\t%s: no metrics", s.URL)
			continue
		}
		p("memory\t%s: RSS %s → %s (peak %s), heap in use %s → %s (peak %s)", s.URL,
			mib(s.Start.RSS), mib(s.End.RSS), mib(s.Peak.RSS), mib(s.Start.HeapInuse), mib(s.End.HeapInuse), mib(s.Peak.HeapInuse))
	}
	return tw.Flush()
}
