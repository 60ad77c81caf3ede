package bastion

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bastionhq/bastion/internal/safetext"
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
	StartupsDropped *prometheus.CounterVec
}

// NewMetrics creates the collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
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
		StartupsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bastion_startups_dropped_total", Help: "Connections closed before their handshake because sessions.max_startups others had not yet authenticated, by listener.",
		}, []string{"listener"}),
	}
	m.initialize()
	return m
}

// Label values known in advance: every series with them is created at zero
// by NewMetrics, so dashboards and alerts (rate(), absent()) see the
// bastion_* series from the first scrape, before any traffic.
var (
	metricKinds       = []string{"shell", "exec", "subsystem", "tcp", "postgres"}
	metricTargetKinds = []string{"ssh", "tcp", "postgres"}
	metricAuthReasons = []string{"expired", "host_certificate", "identity", "identity_mismatch", "invalid", "no_principals",
		"not_certificate", "revoked", "source_address", "unknown_ca"}
	metricDecisions = [][2]string{{"command", "allow"}, {"command", "block"}, {"command", "approve"}, {"command", "unreadable"},
		{"sql", "allow"}, {"sql", "block"}, {"sql", "approve"}}
	metricRefusals = []string{"session", "direct-tcpip", "pty-req", "env", "subsystem", "exec", "shell", "other"}
	// refusalTypes are the channel and request types counted under their
	// own name in bastion_channels_refused_total; any other (a client names
	// them freely) counts as "other", so refusals cannot add series.
	refusalTypes = map[string]bool{"session": true, "direct-tcpip": true, "pty-req": true, "env": true, "subsystem": true,
		"exec": true, "shell": true, "postgres": true, "window-change": true, "x11-req": true, "x11": true,
		"auth-agent-req@openssh.com": true, "auth-agent@openssh.com": true, "forwarded-tcpip": true,
		"direct-streamlocal@openssh.com": true, "signal": true, "break": true}
)

// typeName is a client-named channel or request type as logs, audit
// records and refusal messages show it: printable, and cut at 64 bytes
// (a name can be as long as a packet).
func typeName(typ string) string {
	if len(typ) > 64 {
		typ = strings.ToValidUTF8(typ[:64], "") + "…"
	}
	return safetext.Printable(typ)
}

// refusalLabel is the bastion_channels_refused_total label for a channel
// or request type a client sent.
func refusalLabel(typ string) string {
	if refusalTypes[typ] {
		return typ
	}
	return "other"
}

// initialize creates the series with known label values at zero.
func (m *Metrics) initialize() {
	for _, k := range metricKinds {
		m.SessionsActive.WithLabelValues(k)
		m.SessionsTotal.WithLabelValues(k)
		m.Bytes.WithLabelValues("up", k)
		m.Bytes.WithLabelValues("down", k)
	}
	for _, k := range metricTargetKinds {
		m.UpstreamDial.WithLabelValues(k, "ok")
		m.UpstreamDial.WithLabelValues(k, "error")
	}
	for _, r := range metricAuthReasons {
		m.AuthFailures.WithLabelValues(r)
	}
	for _, d := range metricDecisions {
		m.Decisions.WithLabelValues(d[0], d[1])
	}
	for _, r := range metricRefusals {
		m.ChannelsRefused.WithLabelValues(r)
	}
	for _, l := range []string{"ssh", "postgres"} {
		m.StartupsDropped.WithLabelValues(l)
	}
}

// Collectors returns every collector for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.SessionsActive, m.SessionsTotal, m.Bytes, m.AuthFailures, m.UpstreamDial, m.Decisions, m.ChannelsRefused, m.StartupsDropped}
}
