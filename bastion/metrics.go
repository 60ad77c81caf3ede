package bastion

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's Prometheus collectors. Register them with
// Collectors; a nil *Metrics in Config gets a private, unregistered set.
type Metrics struct {
	SessionsActive  *prometheus.GaugeVec
	SessionsTotal   *prometheus.CounterVec
	Bytes           *prometheus.CounterVec
	AuthFailures    *prometheus.CounterVec
	UpstreamDial    *prometheus.HistogramVec
	Decisions       *prometheus.CounterVec
	ChannelsRefused *prometheus.CounterVec
}

// NewMetrics creates the collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		SessionsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bastion_sessions_active", Help: "Sessions in progress, by kind.",
		}, []string{"kind"}),
		SessionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bastion_sessions_total", Help: "Sessions started, by kind.",
		}, []string{"kind"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bastion_bytes_total", Help: "Bytes relayed, by direction (up = to targets, down = to users) and kind.",
		}, []string{"direction", "kind"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bastion_auth_failures_total", Help: "SSH authentication failures, by reason.",
		}, []string{"reason"}),
		UpstreamDial: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bastion_upstream_dial_seconds", Help: "Time to connect and authenticate to a target.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"kind", "result"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bastion_rule_decisions_total", Help: "Rule decisions, by kind of rule and action.",
		}, []string{"on", "action"}),
		ChannelsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bastion_channels_refused_total", Help: "Channels and requests refused, by type.",
		}, []string{"type"}),
	}
}

// Collectors returns every collector for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.SessionsActive, m.SessionsTotal, m.Bytes, m.AuthFailures, m.UpstreamDial, m.Decisions, m.ChannelsRefused}
}
