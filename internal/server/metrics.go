package server

import (
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics (docs/server.md §8). Each
// Server has its own registry, so several servers in one test process do
// not collide.
type metrics struct {
	reg       *prometheus.Registry
	calls     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	limited   *prometheus.CounterVec
	enqueued  prometheus.Counter
	delivered prometheus.Counter
	acked     prometheus.Counter
	expired   prometheus.Counter
	streams   prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parleyd_rpc_total", Help: "RPCs by procedure and result code.",
		}, []string{"procedure", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parleyd_rpc_seconds", Help: "Unary RPC latency.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"procedure"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parleyd_rate_limited_total", Help: "Calls refused by a rate limit.",
		}, []string{"limit"}),
		enqueued:  prometheus.NewCounter(prometheus.CounterOpts{Name: "parleyd_envelopes_enqueued_total", Help: "Envelopes durably queued."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "parleyd_envelopes_delivered_total", Help: "Envelopes pushed on delivery streams."}),
		acked:     prometheus.NewCounter(prometheus.CounterOpts{Name: "parleyd_envelopes_acked_total", Help: "Envelopes acknowledged."}),
		expired:   prometheus.NewCounter(prometheus.CounterOpts{Name: "parleyd_envelopes_expired_total", Help: "Envelopes deleted at their time-to-live."}),
		streams:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "parleyd_streams", Help: "Open delivery streams."}),
	}
	m.reg.MustRegister(m.calls, m.latency, m.limited, m.enqueued, m.delivered, m.acked, m.expired, m.streams,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) observe(procedure string, err error, d time.Duration) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	m.calls.WithLabelValues(procedure, code).Inc()
	m.latency.WithLabelValues(procedure).Observe(d.Seconds())
}
