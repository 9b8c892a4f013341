package manager

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the manager's Prometheus series, in a registry of its own. Label values are
// bounded: operation names, outcomes, route templates, status codes.
type metrics struct {
	registry   *prometheus.Registry
	operations *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	inFlight   *prometheus.GaugeVec
	requests   *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockpin_manager_operations_total",
			Help: "Operations by kind (spawn, destroy, restart, list) and outcome.",
		}, []string{"op", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockpin_manager_operation_duration_seconds",
			Help:    "Duration of operations by kind, including the wait for the project lock.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30},
		}, []string{"op"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sockpin_manager_operations_in_flight",
			Help: "Operations currently running or waiting for their project lock.",
		}, []string{"op"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockpin_manager_http_requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "status"}),
	}
	m.registry.MustRegister(m.operations, m.duration, m.inFlight, m.requests,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// begin records the start of an operation; the returned func records its outcome.
func (m *metrics) begin(op string) func(outcome string) {
	start := time.Now()
	m.inFlight.WithLabelValues(op).Inc()
	return func(outcome string) {
		m.inFlight.WithLabelValues(op).Dec()
		m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
		m.operations.WithLabelValues(op, outcome).Inc()
	}
}
