package collect

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the collector's Prometheus metrics. No label ever carries a
// site, path, visitor or any other value taken from an event.
type Metrics struct {
	Received   *prometheus.CounterVec
	Accepted   *prometheus.CounterVec
	Rejected   *prometheus.CounterVec
	Dropped    *prometheus.CounterVec
	Redactions *prometheus.CounterVec
	// PropsDropped counts props dropped because the site does not allow
	// their name.
	PropsDropped prometheus.Counter
	AppendTime   prometheus.Histogram
}

// NewMetrics registers the collector metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_events_received_total", Help: "Events received, by endpoint."}, []string{"endpoint"}),
		Accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_events_accepted_total", Help: "Events durably appended to the event log, by endpoint."}, []string{"endpoint"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_events_rejected_total", Help: "Events rejected with a client error, by reason."}, []string{"reason"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_events_dropped_total", Help: "Events answered as accepted but deliberately not stored: bot, gpc (Global Privacy Control), consent, duplicate."}, []string{"reason"}),
		Redactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_pii_redactions_total", Help: "Values redacted at the edge because they looked like personal data, by kind and where they were found."}, []string{"kind", "where"}),
		PropsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_props_dropped_total", Help: "Custom-event props dropped because the site's allowed props do not name them."}),
		AppendTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "veil_log_append_duration_seconds", Help: "Time from handing events to the event log until they are acknowledged as stored.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
	}
	reg.MustRegister(m.Received, m.Accepted, m.Rejected, m.Dropped, m.Redactions, m.PropsDropped, m.AppendTime)
	// Pre-create the common series so dashboards show zeros, not gaps.
	for _, r := range []string{"bot", "gpc", "consent", "duplicate"} {
		m.Dropped.WithLabelValues(r)
	}
	for _, e := range []string{"event", "batch"} {
		m.Received.WithLabelValues(e)
		m.Accepted.WithLabelValues(e)
	}
	return m
}
