package ruler

import (
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// The sent and error counters of every Alertmanager exist at 0 before any
// alert is sent, so alerts and dashboards on their rate see 0, not nothing.
func TestNotifierCountersStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{AlertmanagerURL: []string{"http://am-1/alertmanager/", "http://am-2"}}
	newNotifier(cfg, log.NewNopLogger(), reg)
	want := `
# HELP meridian_ruler_notifications_errors_total Alerts that could not be sent to an Alertmanager, by Alertmanager URL.
# TYPE meridian_ruler_notifications_errors_total counter
meridian_ruler_notifications_errors_total{alertmanager="http://am-1/alertmanager"} 0
meridian_ruler_notifications_errors_total{alertmanager="http://am-2"} 0
# HELP meridian_ruler_notifications_sent_total Alerts sent to an Alertmanager, by Alertmanager URL.
# TYPE meridian_ruler_notifications_sent_total counter
meridian_ruler_notifications_sent_total{alertmanager="http://am-1/alertmanager"} 0
meridian_ruler_notifications_sent_total{alertmanager="http://am-2"} 0
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"meridian_ruler_notifications_errors_total", "meridian_ruler_notifications_sent_total"))
}

// A password in an Alertmanager URL never reaches the metrics.
func TestNotifierMetricsHideURLPasswords(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{AlertmanagerURL: []string{"https://ruler:s3cret@am.example/alertmanager"}}
	newNotifier(cfg, log.NewNopLogger(), reg)
	want := `
# HELP meridian_ruler_notifications_errors_total Alerts that could not be sent to an Alertmanager, by Alertmanager URL.
# TYPE meridian_ruler_notifications_errors_total counter
meridian_ruler_notifications_errors_total{alertmanager="https://ruler:xxxxx@am.example/alertmanager"} 0
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "meridian_ruler_notifications_errors_total"))
}
