package limits

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// defaultLimits returns the flag defaults.
func defaultLimits(t testing.TB) Limits {
	t.Helper()
	var l Limits
	l.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	require.NoError(t, l.Validate())
	return l
}

// writeFile replaces the file at path in one step, as a reloading reader
// must never see it half written.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// startOverrides starts Overrides and stops them when the test ends.
func startOverrides(t testing.TB, defaults Limits, cfg OverridesConfig, logger log.Logger, reg prometheus.Registerer) *Overrides {
	t.Helper()
	o, err := NewOverrides(defaults, cfg, logger, reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), o))
	t.Cleanup(func() {
		require.NoError(t, services.StopAndAwaitTerminated(context.Background(), o))
	})
	return o
}

func TestOverridesConfig(t *testing.T) {
	var cfg OverridesConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.Equal(t, OverridesConfig{ReloadPeriod: 10 * time.Second}, cfg)
	require.NoError(t, cfg.Validate())

	require.NoError(t, fs.Parse([]string{"-runtime-config.file=r.yaml", "-runtime-config.reload-period=0s"}))
	require.ErrorContains(t, cfg.Validate(), "-runtime-config.reload-period must be positive")
}

func TestOverridesWithoutFile(t *testing.T) {
	defaults := defaultLimits(t)
	o := startOverrides(t, defaults, OverridesConfig{ReloadPeriod: time.Second}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.Equal(t, defaults, o.Limits("team-a"))
	require.Equal(t, defaults, o.Limits(""))
}

func TestOverridesFile(t *testing.T) {
	defaults := defaultLimits(t)
	withSeries := defaults
	withSeries.MaxGlobalSeriesPerTenant = 10
	withDurations := defaults
	withDurations.QueryTimeout = model.Duration(5 * time.Minute)
	withDurations.OutOfOrderTimeWindow = model.Duration(time.Hour)

	for _, tc := range []struct {
		name    string
		content string
		want    map[string]Limits // Tenants not listed get the defaults.
	}{
		{name: "empty file", content: ""},
		{name: "no overrides", content: "overrides:\n"},
		{
			name:    "one field keeps the other defaults",
			content: "overrides:\n  team-a:\n    max_global_series_per_tenant: 10\n",
			want:    map[string]Limits{"team-a": withSeries},
		},
		{
			name:    "durations",
			content: "overrides:\n  team-a:\n    query_timeout: 5m\n    out_of_order_time_window: 1h\n  team-b:\n    max_global_series_per_tenant: 10\n",
			want:    map[string]Limits{"team-a": withDurations, "team-b": withSeries},
		},
		{
			name:    "empty entry means defaults",
			content: "overrides:\n  team-a:\n  team-b: {}\n",
			want:    map[string]Limits{"team-a": defaults, "team-b": defaults},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "runtime.yaml")
			writeFile(t, path, tc.content)
			o := startOverrides(t, defaults, OverridesConfig{File: path, ReloadPeriod: time.Hour}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
			for tenant, want := range tc.want {
				require.Equal(t, want, o.Limits(tenant), tenant)
			}
			require.Equal(t, defaults, o.Limits("someone-else"))
		})
	}
}

func TestOverridesShardSizes(t *testing.T) {
	defaults := defaultLimits(t)
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	writeFile(t, path, "overrides:\n  team-a:\n    ingestion_tenant_shard_size: 3\n    store_gateway_tenant_shard_size: 2\n")
	o := startOverrides(t, defaults, OverridesConfig{File: path, ReloadPeriod: time.Hour}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.Equal(t, 3, o.IngestionTenantShardSize("team-a"))
	require.Equal(t, 2, o.StoreGatewayTenantShardSize("team-a"))
	require.Equal(t, 0, o.IngestionTenantShardSize("team-b"), "0 (all instances) by default")
	require.Equal(t, 0, o.StoreGatewayTenantShardSize("team-b"), "0 (all instances) by default")
}

func TestOverridesLimitsIsACopy(t *testing.T) {
	defaults := defaultLimits(t)
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	writeFile(t, path, "overrides:\n  team-a:\n    max_global_series_per_tenant: 10\n")
	o := startOverrides(t, defaults, OverridesConfig{File: path, ReloadPeriod: time.Hour}, log.NewNopLogger(), prometheus.NewPedanticRegistry())

	l := o.Limits("team-a")
	l.MaxGlobalSeriesPerTenant = 99
	d := o.Limits("team-b")
	d.MaxGlobalSeriesPerTenant = 99
	require.Equal(t, 10, o.Limits("team-a").MaxGlobalSeriesPerTenant)
	require.Equal(t, defaults.MaxGlobalSeriesPerTenant, o.Limits("team-b").MaxGlobalSeriesPerTenant)
}

func TestOverridesInvalidFileAtStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		wantErr string
	}{
		{name: "unknown limit", content: "overrides:\n  team-a:\n    max_series: 10\n", wantErr: `overrides for tenant "team-a"`},
		{name: "unknown limit is named", content: "overrides:\n  team-a:\n    max_series: 10\n", wantErr: "field max_series not found"},
		{name: "unknown top-level field", content: "limits:\n  team-a: {}\n", wantErr: "field limits not found"},
		{name: "wrong type", content: "overrides:\n  team-a:\n    max_global_series_per_tenant: lots\n", wantErr: `overrides for tenant "team-a"`},
		{name: "invalid limit", content: "overrides:\n  team-a:\n    max_points_per_timeseries: 0\n", wantErr: "max_points_per_timeseries must be positive"},
		{name: "negative shard size", content: "overrides:\n  team-a:\n    ingestion_tenant_shard_size: -1\n", wantErr: "ingestion_tenant_shard_size and store_gateway_tenant_shard_size must not be negative"},
		{name: "invalid tenant", content: "overrides:\n  a/b: {}\n", wantErr: "unsupported character '/'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "runtime.yaml")
			writeFile(t, path, tc.content)
			o, err := NewOverrides(defaultLimits(t), OverridesConfig{File: path, ReloadPeriod: time.Hour}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
			require.NoError(t, err)
			err = services.StartAndAwaitRunning(context.Background(), o)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestOverridesInvalidDefaults(t *testing.T) {
	defaults := defaultLimits(t)
	defaults.MaxPointsPerTimeseries = 0
	_, err := NewOverrides(defaults, OverridesConfig{}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.ErrorContains(t, err, "default limits: max_points_per_timeseries must be positive")
}

// lockedBuffer is a bytes.Buffer safe for a logger writing while a test reads.
type lockedBuffer struct {
	mtx sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.buf.String()
}

func reloadSuccessful(t testing.TB, reg prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "meridian_runtime_config_last_reload_successful" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("meridian_runtime_config_last_reload_successful not exported")
	return 0
}

func TestOverridesReload(t *testing.T) {
	defaults := defaultLimits(t)
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	writeFile(t, path, "overrides:\n  team-a:\n    max_global_series_per_tenant: 10\n")
	reg := prometheus.NewPedanticRegistry()
	var logs lockedBuffer
	o := startOverrides(t, defaults, OverridesConfig{File: path, ReloadPeriod: 20 * time.Millisecond}, log.NewLogfmtLogger(&logs), reg)
	require.Equal(t, 10, o.Limits("team-a").MaxGlobalSeriesPerTenant)
	require.Equal(t, 1.0, reloadSuccessful(t, reg))

	// A changed file takes effect without a restart.
	writeFile(t, path, "overrides:\n  team-a:\n    max_global_series_per_tenant: 20\n  team-b:\n    max_samples_per_query: 5\n")
	require.Eventually(t, func() bool {
		return o.Limits("team-a").MaxGlobalSeriesPerTenant == 20
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 5, o.Limits("team-b").MaxSamplesPerQuery)
	require.Equal(t, defaults.MaxSamplesPerQuery, o.Limits("team-a").MaxSamplesPerQuery)

	// A bad file keeps the previous config in force and says so.
	writeFile(t, path, "overrides:\n  team-a:\n    max_global_series_per_tenant: 30\n    max_seris: 1\n")
	require.Eventually(t, func() bool {
		return reloadSuccessful(t, reg) == 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 20, o.Limits("team-a").MaxGlobalSeriesPerTenant)
	require.Equal(t, 5, o.Limits("team-b").MaxSamplesPerQuery)
	require.Contains(t, logs.String(), "the previously loaded config stays in force")
	require.Contains(t, logs.String(), "field max_seris not found")

	// Fixing the file applies it.
	writeFile(t, path, "overrides:\n  team-a:\n    max_global_series_per_tenant: 30\n")
	require.Eventually(t, func() bool {
		return o.Limits("team-a").MaxGlobalSeriesPerTenant == 30
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, defaults, o.Limits("team-b"))
	require.Equal(t, 1.0, reloadSuccessful(t, reg))
}

func TestOverridesServeHTTP(t *testing.T) {
	defaults := defaultLimits(t)
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	writeFile(t, path, "overrides:\n  team-a:\n    max_global_series_per_tenant: 10\n    query_timeout: 5m\n  team-b:\n    max_label_name_length: 1024\n")
	withFile := startOverrides(t, defaults, OverridesConfig{File: path, ReloadPeriod: time.Hour}, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	withoutFile := startOverrides(t, defaults, OverridesConfig{}, log.NewNopLogger(), prometheus.NewPedanticRegistry())

	// The defaults as YAML lines, without indentation.
	defaultsYAML := `max_label_name_length: 1024
max_label_value_length: 2048
max_label_names_per_series: 30
creation_grace_period: 10m
max_global_series_per_tenant: 1500000
out_of_order_time_window: 0s
ingestion_rate: 1e+06
ingestion_burst_size: 2000000
ingestion_tenant_shard_size: 0
max_query_length: 32d
max_samples_per_query: 50000000
max_fetched_series_per_query: 100000
query_timeout: 2m
max_outstanding_requests_per_tenant: 1000
max_query_parallelism: 14
max_points_per_timeseries: 11000
max_queriers_per_tenant: 0
store_gateway_tenant_shard_size: 0
compactor_blocks_retention_period: 0s
ruler_max_rule_groups_per_tenant: 70
ruler_max_rules_per_rule_group: 20
ruler_min_evaluation_interval: 0s
ruler_query_timeout: 0s
graphite_step: 1m
graphite_max_series_per_render: 10000
graphite_max_points_per_render: 10000000
alertmanager_max_config_size_bytes: 0
alertmanager_max_templates_count: 0
alertmanager_max_silences_count: 0
alertmanager_max_alerts_count: 0
`
	indent := func(s, prefix string) string {
		lines := strings.SplitAfter(s, "\n")
		for i, l := range lines {
			if l != "" {
				lines[i] = prefix + l
			}
		}
		return strings.Join(lines, "")
	}
	teamA := strings.NewReplacer("max_global_series_per_tenant: 1500000", "max_global_series_per_tenant: 10", "query_timeout: 2m", "query_timeout: 5m").Replace(defaultsYAML)

	for _, tc := range []struct {
		name     string
		o        *Overrides
		method   string
		query    string
		wantCode int
		wantBody string
	}{
		{
			name:     "in force",
			o:        withFile,
			wantCode: http.StatusOK,
			wantBody: "defaults:\n" + indent(defaultsYAML, "  ") + "overrides:\n  team-a:\n" + indent(teamA, "    ") + "  team-b:\n" + indent(defaultsYAML, "    "),
		},
		{
			name:     "diff",
			o:        withFile,
			query:    "?mode=diff",
			wantCode: http.StatusOK,
			wantBody: "overrides:\n  team-a:\n    max_global_series_per_tenant: 10\n    query_timeout: 5m\n  team-b: {}\n",
		},
		{
			name:     "no file",
			o:        withoutFile,
			wantCode: http.StatusOK,
			wantBody: "defaults:\n" + indent(defaultsYAML, "  ") + "overrides: {}\n",
		},
		{
			name:     "no file diff",
			o:        withoutFile,
			query:    "?mode=diff",
			wantCode: http.StatusOK,
			wantBody: "overrides: {}\n",
		},
		{
			name:     "unknown mode",
			o:        withFile,
			query:    "?mode=full",
			wantCode: http.StatusBadRequest,
			wantBody: "unknown mode \"full\": leave mode out for the limits in force, or use mode=diff for what differs from the defaults\n",
		},
		{
			name:     "post",
			o:        withFile,
			method:   http.MethodPost,
			wantCode: http.StatusMethodNotAllowed,
			wantBody: "use GET to read the runtime config\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			w := httptest.NewRecorder()
			tc.o.ServeHTTP(w, httptest.NewRequest(method, "/runtime_config"+tc.query, nil))
			require.Equal(t, tc.wantCode, w.Code)
			require.Equal(t, tc.wantBody, w.Body.String())
		})
	}
}

func TestOverridesMetricsPrefix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	writeFile(t, path, "overrides: {}\n")
	reg := prometheus.NewPedanticRegistry()
	startOverrides(t, defaultLimits(t), OverridesConfig{File: path, ReloadPeriod: time.Hour}, log.NewNopLogger(), reg)
	require.Equal(t, 1, testutil.CollectAndCount(reg, "meridian_runtime_config_last_reload_successful"))
	require.Equal(t, 1, testutil.CollectAndCount(reg, "meridian_runtime_config_hash"))
}
