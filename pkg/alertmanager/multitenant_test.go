package alertmanager

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

type fixedLimits limits.Limits

func (l fixedLimits) Limits(string) limits.Limits { return limits.Limits(l) }

func defaultLimits() fixedLimits {
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return fixedLimits(l)
}

func testConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	c.PollInterval = time.Hour
	c.PersistInterval = time.Hour
	return c
}

func startAM(t *testing.T, bkt objstore.Bucket, lim limits.Source) *MultitenantAlertmanager {
	t.Helper()
	am, err := New(testConfig(), bkt, lim, log.NewNopLogger(), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), am))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), am) })
	return am
}

func do(t *testing.T, h http.Handler, tenant, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req = req.WithContext(user.InjectOrgID(req.Context(), tenant))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func webhookConfig(url string) string {
	return fmt.Sprintf(`alertmanager_config: |
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 100ms
    group_interval: 200ms
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs:
        - url: %s
          send_resolved: true
template_files:
  a.tmpl: '{{ define "x" }}x{{ end }}'
`, url)
}

func TestConfigAPIValidation(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	lim := defaultLimits()
	lim.AlertmanagerMaxTemplatesCount = 1
	lim.AlertmanagerMaxConfigSizeBytes = 2000
	am := startAM(t, bkt, lim)
	h := http.HandlerFunc(am.ConfigHandler)

	code, body := do(t, h, "a", http.MethodGet, "/api/v1/alerts", "")
	require.Equal(t, http.StatusNotFound, code)
	require.True(t, strings.HasPrefix(body, "alertmanager storage object not found"), "Grafana matches Cortex's text: %s", body)

	for name, tc := range map[string]struct{ body, want string }{
		"not yaml":           {"alertmanager_config: [", errIDInvalidConfig},
		"unknown field":      {"alertmanager_config: x\nbogus: 1\n", "field bogus not found"},
		"empty":              {"template_files: {}\n", "alertmanager_config is empty"},
		"does not load":      {"alertmanager_config: |\n  route: {receiver: nope}\n", "undefined receiver"},
		"invalid receiver":   {"alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r, webhook_configs: [{}]}]\n", "one of url or url_file must be configured"},
		"local file":         {"alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r, webhook_configs: [{url_file: /etc/passwd}]}]\n", "url_file reads a file of the server"},
		"bad template":       {"alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r}]\ntemplate_files:\n  a: '{{ define }}'\n", "template file \"a\" does not parse"},
		"too many templates": {"alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r}]\ntemplate_files:\n  a: x\n  b: y\n", errIDTooManyTemplates + ": the configuration has 2 template files, more than the limit of 1; merge some, or raise the per-tenant limit alertmanager_max_templates_count"},
		"too large":          {"alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r}]\n# " + strings.Repeat("x", 2000) + "\n", errIDConfigTooLarge + ": the configuration is 2"},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := do(t, h, "a", http.MethodPost, "/api/v1/alerts", tc.body)
			require.Equal(t, http.StatusBadRequest, code, body)
			require.Contains(t, body, tc.want)
			exists, err := bkt.Exists(context.Background(), bucket.AlertmanagerConfigName("a"))
			require.NoError(t, err)
			require.False(t, exists, "a refused configuration must not be stored")
		})
	}

	good := webhookConfig("http://127.0.0.1:1/")
	code, body = do(t, h, "a", http.MethodPost, "/api/v1/alerts", good)
	require.Equal(t, http.StatusCreated, code, body)
	code, body = do(t, h, "a", http.MethodGet, "/api/v1/alerts", "")
	require.Equal(t, http.StatusOK, code)
	uc, err := decodeUserConfig([]byte(body))
	require.NoError(t, err)
	require.Contains(t, uc.AlertmanagerConfig, "receiver: hook")
	require.Equal(t, map[string]string{"a.tmpl": `{{ define "x" }}x{{ end }}`}, uc.TemplateFiles)

	code, _ = do(t, h, "b", http.MethodGet, "/api/v1/alerts", "")
	require.Equal(t, http.StatusNotFound, code, "tenant b must not see tenant a's configuration")
	code, _ = do(t, h, "b", http.MethodDelete, "/api/v1/alerts", "")
	require.Equal(t, http.StatusOK, code)
	code, _ = do(t, h, "a", http.MethodGet, "/api/v1/alerts", "")
	require.Equal(t, http.StatusOK, code, "tenant b's delete must not touch tenant a's configuration")

	code, _ = do(t, h, "a", http.MethodDelete, "/api/v1/alerts", "")
	require.Equal(t, http.StatusOK, code)
	code, _ = do(t, h, "a", http.MethodGet, "/api/v1/alerts", "")
	require.Equal(t, http.StatusNotFound, code)
}

type webhookRecorder struct {
	mu       sync.Mutex
	payloads []map[string]any
}

func (w *webhookRecorder) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	var p map[string]any
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &p)
	w.mu.Lock()
	w.payloads = append(w.payloads, p)
	w.mu.Unlock()
}

func (w *webhookRecorder) statuses() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, p := range w.payloads {
		out = append(out, fmt.Sprint(p["status"]))
	}
	return out
}

func TestNotifyAndPersist(t *testing.T) {
	hook := &webhookRecorder{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	lim := defaultLimits()
	lim.AlertmanagerMaxAlertsCount = 1
	lim.AlertmanagerMaxSilencesCount = 1
	am := startAM(t, bkt, lim)

	code, body := do(t, http.HandlerFunc(am.ConfigHandler), "a", http.MethodPost, "/api/v1/alerts", webhookConfig(srv.URL))
	require.Equal(t, http.StatusCreated, code, body)

	code, body = do(t, am, "a", http.MethodPost, "/alertmanager/api/v2/alerts", `[{"labels":{"alertname":"Up","job":"x"}}]`)
	require.Equal(t, http.StatusOK, code, body)
	require.Eventually(t, func() bool { return len(hook.statuses()) >= 1 }, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, "firing", hook.statuses()[0])

	code, body = do(t, am, "a", http.MethodPost, "/alertmanager/api/v2/alerts", `[{"labels":{"alertname":"Other"}}]`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, errIDTooManyAlerts)
	require.Contains(t, body, "alertmanager_max_alerts_count")

	code, body = do(t, am, "b", http.MethodGet, "/alertmanager/api/v2/alerts", "")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `[]`, body, "tenant b must not see tenant a's alerts")

	silence := `{"matchers":[{"name":"job","value":"x","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"t","comment":"c"}`
	code, body = do(t, am, "a", http.MethodPost, "/alertmanager/api/v2/silences", silence)
	require.Equal(t, http.StatusOK, code, body)
	code, body = do(t, am, "a", http.MethodPost, "/alertmanager/api/v2/silences", silence)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "alertmanager_max_silences_count")

	// A restart (stop writes the state) keeps the silence.
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), am))
	am2 := startAM(t, bkt, lim)
	code, body = do(t, am2, "a", http.MethodGet, "/alertmanager/api/v2/silences", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"comment":"c"`)
	code, body = do(t, am2, "b", http.MethodGet, "/alertmanager/api/v2/silences", "")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `[]`, body)
}

// A configuration uploaded or deleted through another process reaches this
// one at the next poll.
func TestPollPicksUpOtherProcesses(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	writer := startAM(t, bkt, defaultLimits())
	cfg := testConfig()
	cfg.PollInterval = 50 * time.Millisecond
	reader, err := New(cfg, bkt, defaultLimits(), log.NewNopLogger(), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), reader))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), reader) })

	code, body := do(t, http.HandlerFunc(writer.ConfigHandler), "a", http.MethodPost, "/api/v1/alerts", webhookConfig("http://127.0.0.1:1/"))
	require.Equal(t, http.StatusCreated, code, body)
	require.Eventually(t, func() bool {
		_, body := do(t, reader, "a", http.MethodGet, "/alertmanager/api/v2/receivers", "")
		return strings.Contains(body, `"name":"hook"`)
	}, 5*time.Second, 20*time.Millisecond, "the reader runs the uploaded configuration")

	code, _ = do(t, http.HandlerFunc(writer.ConfigHandler), "a", http.MethodDelete, "/api/v1/alerts", "")
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool { return reader.tenantCount() == 0 }, 5*time.Second, 20*time.Millisecond, "the reader stops the tenant whose configuration was deleted")
}

// countingBucket counts reads of Alertmanager configurations.
type countingBucket struct {
	objstore.Bucket
	mu    sync.Mutex
	reads int
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if strings.HasSuffix(name, "/config.yaml") {
		b.mu.Lock()
		b.reads++
		b.mu.Unlock()
	}
	return b.Bucket.Get(ctx, name)
}

func (b *countingBucket) configReads() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reads
}

// A poll reads only the configurations written since the last one.
func TestPollSkipsUnchangedConfigs(t *testing.T) {
	dir := t.TempDir()
	fs, err := filesystem.NewBucket(dir)
	require.NoError(t, err)
	bkt := &countingBucket{Bucket: fs}
	require.NoError(t, bkt.Upload(context.Background(), bucket.AlertmanagerConfigName("a"), strings.NewReader(webhookConfig("http://127.0.0.1:1/"))))
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, bucket.AlertmanagerConfigName("a")), old, old))

	am := startAM(t, bkt, defaultLimits())
	require.Equal(t, 1, am.tenantCount())
	afterStart := bkt.configReads()
	require.NoError(t, am.sync(context.Background()))
	require.NoError(t, am.sync(context.Background()))
	require.Equal(t, afterStart, bkt.configReads(), "an unchanged configuration is not read again")

	now := time.Now().Add(-2 * time.Minute)
	require.NoError(t, os.Chtimes(filepath.Join(dir, bucket.AlertmanagerConfigName("a")), now, now))
	require.NoError(t, am.sync(context.Background()))
	require.Equal(t, afterStart+1, bkt.configReads(), "a rewritten configuration is read again")
}
