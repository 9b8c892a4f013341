package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the proxy's Prometheus metrics, on a registry of its own.
// Label values are bounded: operation names, decisions, rule names from the
// policy, never paths, IDs or images.
type Metrics struct {
	Registry       *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstreamErrors prometheus.Counter
	hijacked       prometheus.Gauge
	policyInfo     *prometheus.GaugeVec
	reloads        *prometheus.CounterVec
	generation     prometheus.Gauge
}

// NewMetrics registers the proxy's metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockpin_requests_total",
			Help: "Requests decided, by operation and decision (allow, deny, error).",
		}, []string{"op", "decision"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockpin_request_duration_seconds",
			Help:    "Time from request to the end of the answer (streams excluded), by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"op"}),
		upstreamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockpin_upstream_errors_total",
			Help: "Requests that could not be sent to or answered by the daemon.",
		}),
		hijacked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sockpin_hijacked_connections",
			Help: "Connections currently switched to a raw two-way stream (exec).",
		}),
		policyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sockpin_policy_info",
			Help: "The loaded policy; the sha256 label is the SHA-256 of the policy file.",
		}, []string{"sha256"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockpin_policy_reloads_total",
			Help: "Policy reloads by result (ok, failed). A failed reload keeps the old policy.",
		}, []string{"result"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sockpin_policy_generation",
			Help: "How many policies have been loaded since start (1 after start).",
		}),
	}
	m.Registry.MustRegister(m.requests, m.duration, m.upstreamErrors, m.hijacked,
		m.policyInfo, m.reloads, m.generation,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Both results are series from the start, so that an alert on failed
	// reloads has something to watch before the first reload.
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	return m
}
