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
	handedOff prometheus.Counter
	acked     prometheus.Counter
	expired   prometheus.Counter
	streams   prometheus.Gauge

	// Key transparency.
	ktEpochs          prometheus.Gauge // epochs in the log, as this node knows it
	ktPublished       prometheus.Gauge // log size of the served head
	ktPending         prometheus.Gauge
	ktSequencer       prometheus.Gauge // 1 on the sequencer
	ktEpochsMade      prometheus.Counter
	ktSequenced       prometheus.Counter
	ktRefused         prometheus.Counter
	ktSequencing      prometheus.Histogram
	ktWitnessFailures *prometheus.CounterVec
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
		handedOff: prometheus.NewCounter(prometheus.CounterOpts{Name: "parleyd_envelopes_handed_off_total", Help: "Envelopes a delivery stream took from a send on its node instead of reading them from the store (also counted as delivered)."}),
		acked:     prometheus.NewCounter(prometheus.CounterOpts{Name: "parleyd_envelopes_acked_total", Help: "Envelopes acknowledged."}),
		expired:   prometheus.NewCounter(prometheus.CounterOpts{Name: "parleyd_envelopes_expired_total", Help: "Envelopes deleted at their time-to-live."}),
		streams:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "parleyd_streams", Help: "Open delivery streams."}),

		ktEpochs:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "parleyd_kt_epochs", Help: "Epochs in the key-transparency log (this node's state)."}),
		ktPublished:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "parleyd_kt_published_size", Help: "Log size of the head this node serves (cosigned per policy)."}),
		ktPending:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "parleyd_kt_pending", Help: "Device lists waiting to be sequenced."}),
		ktSequencer:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "parleyd_kt_sequencer", Help: "1 if this node is the key-transparency sequencer."}),
		ktEpochsMade: prometheus.NewCounter(prometheus.CounterOpts{Name: "parleyd_kt_epochs_made_total", Help: "Epochs this node sequenced."}),
		ktSequenced:  prometheus.NewCounter(prometheus.CounterOpts{Name: "parleyd_kt_updates_sequenced_total", Help: "Device lists this node sequenced."}),
		ktRefused:    prometheus.NewCounter(prometheus.CounterOpts{Name: "parleyd_kt_updates_refused_total", Help: "Pending updates that could not be sequenced (a corrupt store)."}),
		ktSequencing: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parleyd_kt_epoch_seconds", Help: "Time to make, commit and cosign one epoch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		ktWitnessFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parleyd_kt_witness_failures_total", Help: "Checkpoint submissions a witness did not cosign.",
		}, []string{"witness"}),
	}
	m.reg.MustRegister(m.calls, m.latency, m.limited, m.enqueued, m.delivered, m.handedOff, m.acked, m.expired, m.streams,
		m.ktEpochs, m.ktPublished, m.ktPending, m.ktSequencer, m.ktEpochsMade, m.ktSequenced, m.ktRefused, m.ktSequencing, m.ktWitnessFailures,
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
