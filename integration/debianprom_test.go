package integration

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// debianPrometheus is Debian's packaged Prometheus (2.42 on Debian 12). It
// cannot send custom headers in remote_write, so it names its tenant with
// the basic-auth username.
const debianPrometheus = "/usr/bin/prometheus"

// TestDebianPrometheusRemoteWrite checks an older, packaged Prometheus as a
// remote-write client: with basic auth as its only way to name a tenant, its
// samples land in that tenant, and Meridian answers a query over a closed
// window exactly as that Prometheus does.
func TestDebianPrometheusRemoteWrite(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(debianPrometheus); err != nil {
		t.Fatalf("Debian's Prometheus is missing at %s (%v): install it with 'apt-get install -y prometheus' (scripts/test.sh does when run as root)", debianPrometheus, err)
	}
	const tenant = "debian-prom"
	m := harness.StartMeridian(t, harness.Options{})
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{
		Bin:  debianPrometheus,
		Host: m.Host(),
		Config: func(self string) string {
			return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['%s']
remote_write:
  - url: %s/api/v1/push
    basic_auth:
      username: %s
      password: not-checked-without-a-credentials-file
    queue_config:
      batch_send_deadline: 1s
      min_shards: 1
      max_shards: 1
`, self, m.URL(), tenant)
		},
	})
	start := time.Now()
	mc := m.Client(tenant)
	requireEventually(t, 60*time.Second, time.Second, "Debian Prometheus' samples in Meridian", func() bool {
		r := mc.Query(`count(up{job="prometheus"})`, time.Time{})
		return r.StatusCode == 200 && r.Status == "success" && len(r.Vector(t)) == 1
	})
	require.Empty(t, m.Client("someone-else").Query(`up`, time.Time{}).Vector(t), "the samples belong to the basic-auth tenant only")

	// Compare a closed window: 20 s of data, ending 10 s before now so
	// remote write has delivered all of it.
	for time.Since(start) < 35*time.Second {
		time.Sleep(time.Second)
	}
	at := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	for _, q := range []string{
		`count_over_time(up{job="prometheus"}[20s])`,
		`sum_over_time(scrape_samples_scraped{job="prometheus"}[20s])`,
		`max_over_time(prometheus_tsdb_head_series[20s])`,
	} {
		want := prom.Client().Query(q, at).Vector(t)
		got := mc.Query(q, at).Vector(t)
		require.Len(t, want, 1, q)
		require.Len(t, got, 1, q)
		require.Equal(t, want[0].Metric, got[0].Metric, q)
		require.Equal(t, want[0].Value, got[0].Value, "%s at %s", q, at)
	}
}
