package alertmanager

import (
	"github.com/go-kit/log"
	dskitmetrics "github.com/grafana/dskit/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// tenantMetrics re-exports what operators watch of every tenant's
// Alertmanager (each has its own registry) under meridian_alertmanager_*
// names: per tenant where a tenant's own failures matter, summed where a
// per-tenant series would only multiply histogram buckets.
type tenantMetrics struct {
	regs *dskitmetrics.TenantRegistries

	notifications       *prometheus.Desc
	notificationsFailed *prometheus.Desc
	notificationLatency *prometheus.Desc
	alertsReceived      *prometheus.Desc
	alertsInvalid       *prometheus.Desc
	silences            *prometheus.Desc
}

func newTenantMetrics(logger log.Logger) *tenantMetrics {
	return &tenantMetrics{
		regs:                dskitmetrics.NewTenantRegistries(logger),
		notifications:       prometheus.NewDesc("meridian_alertmanager_notifications_total", "Notifications attempted, per tenant and integration (webhook, email, slack, ...).", []string{"tenant", "integration"}, nil),
		notificationsFailed: prometheus.NewDesc("meridian_alertmanager_notifications_failed_total", "Notifications that failed after every retry, per tenant and integration.", []string{"tenant", "integration"}, nil),
		notificationLatency: prometheus.NewDesc("meridian_alertmanager_notification_latency_seconds", "Time to send a notification, per integration, all tenants together.", []string{"integration"}, nil),
		alertsReceived:      prometheus.NewDesc("meridian_alertmanager_alerts_received_total", "Alerts received through the v2 API, per tenant and status (firing, resolved).", []string{"tenant", "status"}, nil),
		alertsInvalid:       prometheus.NewDesc("meridian_alertmanager_alerts_invalid_total", "Alerts refused by the v2 API as invalid, per tenant.", []string{"tenant"}, nil),
		silences:            prometheus.NewDesc("meridian_alertmanager_silences", "Silences per tenant and state (active, pending, expired).", []string{"tenant", "state"}, nil),
	}
}

func (m *tenantMetrics) Describe(out chan<- *prometheus.Desc) {
	out <- m.notifications
	out <- m.notificationsFailed
	out <- m.notificationLatency
	out <- m.alertsReceived
	out <- m.alertsInvalid
	out <- m.silences
}

func (m *tenantMetrics) Collect(out chan<- prometheus.Metric) {
	data := m.regs.BuildMetricFamiliesPerTenant()
	data.SendSumOfCountersPerTenant(out, m.notifications, "alertmanager_notifications_total", dskitmetrics.WithLabels("integration"))
	data.SendSumOfCountersPerTenant(out, m.notificationsFailed, "alertmanager_notifications_failed_total", dskitmetrics.WithLabels("integration"))
	data.SendSumOfHistogramsWithLabels(out, m.notificationLatency, "alertmanager_notification_latency_seconds", "integration")
	data.SendSumOfCountersPerTenant(out, m.alertsReceived, "alertmanager_alerts_received_total", dskitmetrics.WithLabels("status"))
	data.SendSumOfCountersPerTenant(out, m.alertsInvalid, "alertmanager_alerts_invalid_total")
	data.SendSumOfGaugesPerTenant(out, m.silences, "alertmanager_silences", dskitmetrics.WithLabels("state"))
}
