package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// amRequest sends one request to the Alertmanager routes as tenant.
func amRequest(t *testing.T, p *harness.Process, tenant, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, p.URL()+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		if strings.HasPrefix(path, "/alertmanager/") {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/yaml")
		}
	}
	code, resp, err := p.Client(tenant).Do(req)
	require.NoError(t, err)
	return code, string(resp)
}

// amWebhook is the receiver of a test: a plain HTTP server on loopback that
// keeps every notification.
type amWebhook struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []webhookPayload
}

type webhookPayload struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func startAMWebhook(t *testing.T) *amWebhook {
	t.Helper()
	w := &amWebhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p webhookPayload
		if err := json.Unmarshal(b, &p); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.got = append(w.got, p)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// waitFor waits for a notification with status and returns it.
func (w *amWebhook) waitFor(t *testing.T, status string) webhookPayload {
	t.Helper()
	var found webhookPayload
	harness.Eventually(t, 20*time.Second, 100*time.Millisecond, "a "+status+" notification", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, p := range w.got {
			if p.Status == status {
				found = p
				return nil
			}
		}
		return fmt.Errorf("%d notifications, none %s", len(w.got), status)
	})
	return found
}

func webhookAMConfig(url string) string {
	return fmt.Sprintf(`alertmanager_config: |
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 500ms
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs:
        - url: %s
          send_resolved: true
`, url)
}

func startMeridianAlertmanager(t *testing.T, args ...string) *harness.Process {
	t.Helper()
	return harness.StartMeridian(t, harness.Options{Target: "alertmanager", Name: "alertmanager", Args: args})
}

// TestAlertmanagerNotifies: an uploaded configuration routes a posted
// alert to a webhook, then its resolution.
func TestAlertmanagerNotifies(t *testing.T) {
	t.Parallel()
	hook := startAMWebhook(t)
	p := startMeridianAlertmanager(t)
	const tenant = "team-a"

	code, body := amRequest(t, p, tenant, http.MethodPost, "/api/v1/alerts", webhookAMConfig(hook.srv.URL))
	require.Equal(t, http.StatusCreated, code, body)

	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	alert := `[{"labels":{"alertname":"HighLatency","team":"a","severity":"page"},"annotations":{"summary":"slow"},"startsAt":"` + start + `"}]`
	code, body = amRequest(t, p, tenant, http.MethodPost, "/alertmanager/api/v2/alerts", alert)
	require.Equal(t, http.StatusOK, code, body)

	firing := hook.waitFor(t, "firing")
	require.Len(t, firing.Alerts, 1)
	require.Equal(t, map[string]string{"alertname": "HighLatency", "team": "a", "severity": "page"}, firing.Alerts[0].Labels)

	// The alert as the API lists it.
	code, body = amRequest(t, p, tenant, http.MethodGet, "/alertmanager/api/v2/alerts", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"alertname":"HighLatency"`)

	end := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	resolved := `[{"labels":{"alertname":"HighLatency","team":"a","severity":"page"},"startsAt":"` + start + `","endsAt":"` + end + `"}]`
	code, body = amRequest(t, p, tenant, http.MethodPost, "/alertmanager/api/v2/alerts", resolved)
	require.Equal(t, http.StatusOK, code, body)
	res := hook.waitFor(t, "resolved")
	require.Len(t, res.Alerts, 1)
	require.Equal(t, "resolved", res.Alerts[0].Status)
	require.Equal(t, "HighLatency", res.Alerts[0].Labels["alertname"])

	// Operators see the notifications per tenant and integration.
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, "the notification metric", func() error {
		_, m := p.Get("/metrics")
		if !bytes.Contains(m, []byte(`meridian_alertmanager_notifications_total{integration="webhook",tenant="team-a"} 2`)) {
			return fmt.Errorf("no meridian_alertmanager_notifications_total of 2 for team-a's webhook")
		}
		return nil
	})
}

const testSilence = `{"matchers":[{"name":"team","value":"a","isRegex":false,"isEqual":true}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"it","comment":"%s"}`

func postSilence(t *testing.T, p *harness.Process, tenant, comment string) string {
	t.Helper()
	code, body := amRequest(t, p, tenant, http.MethodPost, "/alertmanager/api/v2/silences", fmt.Sprintf(testSilence, comment))
	require.Equal(t, http.StatusOK, code, body)
	var resp struct {
		SilenceID string `json:"silenceID"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.NotEmpty(t, resp.SilenceID)
	return resp.SilenceID
}

// TestAlertmanagerTenantIsolation: tenant B can neither read, overwrite nor
// delete tenant A's configuration, alerts or silences.
func TestAlertmanagerTenantIsolation(t *testing.T) {
	t.Parallel()
	hook := startAMWebhook(t)
	p := startMeridianAlertmanager(t)

	aConfig := webhookAMConfig(hook.srv.URL)
	code, body := amRequest(t, p, "tenant-a", http.MethodPost, "/api/v1/alerts", aConfig)
	require.Equal(t, http.StatusCreated, code, body)
	code, body = amRequest(t, p, "tenant-a", http.MethodPost, "/alertmanager/api/v2/alerts", `[{"labels":{"alertname":"OnlyA"}}]`)
	require.Equal(t, http.StatusOK, code, body)
	silenceID := postSilence(t, p, "tenant-a", "a's silence")

	// Read.
	code, body = amRequest(t, p, "tenant-b", http.MethodGet, "/api/v1/alerts", "")
	require.Equal(t, http.StatusNotFound, code, body)
	code, body = amRequest(t, p, "tenant-b", http.MethodGet, "/alertmanager/api/v2/alerts", "")
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `[]`, body)
	code, body = amRequest(t, p, "tenant-b", http.MethodGet, "/alertmanager/api/v2/silences", "")
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `[]`, body)
	code, body = amRequest(t, p, "tenant-b", http.MethodGet, "/alertmanager/api/v2/silence/"+silenceID, "")
	require.Equal(t, http.StatusNotFound, code, body)

	// Overwrite and delete.
	code, body = amRequest(t, p, "tenant-b", http.MethodPost, "/api/v1/alerts", "alertmanager_config: |\n  route: {receiver: b}\n  receivers: [{name: b}]\n")
	require.Equal(t, http.StatusCreated, code, body)
	code, body = amRequest(t, p, "tenant-b", http.MethodDelete, "/api/v1/alerts", "")
	require.Equal(t, http.StatusOK, code, body)
	code, body = amRequest(t, p, "tenant-b", http.MethodDelete, "/alertmanager/api/v2/silence/"+silenceID, "")
	require.Equal(t, http.StatusNotFound, code, body)
	code, body = amRequest(t, p, "tenant-b", http.MethodPost, "/alertmanager/api/v2/silences",
		`{"id":"`+silenceID+`","matchers":[{"name":"x","value":"y","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"b","comment":"b"}`)
	require.Equal(t, http.StatusNotFound, code, "B updating A's silence by ID: %s", body)

	// A's things are intact.
	code, body = amRequest(t, p, "tenant-a", http.MethodGet, "/api/v1/alerts", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, hook.srv.URL)
	code, body = amRequest(t, p, "tenant-a", http.MethodGet, "/alertmanager/api/v2/alerts", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"alertname":"OnlyA"`)
	code, body = amRequest(t, p, "tenant-a", http.MethodGet, "/alertmanager/api/v2/silence/"+silenceID, "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"state":"active"`)
	require.Contains(t, body, `"comment":"a's silence"`)

	// No tenant at all: 401 with a hint.
	code, body = amRequest(t, p, "", http.MethodGet, "/alertmanager/api/v2/silences", "")
	require.Equal(t, http.StatusUnauthorized, code, body)
}

// TestAlertmanagerRestartKeepsSilences: silences survive a graceful stop
// (written at shutdown) and a kill -9 after a periodic snapshot.
func TestAlertmanagerRestartKeepsSilences(t *testing.T) {
	t.Parallel()
	p := startMeridianAlertmanager(t, "-alertmanager.persist-interval=1s")
	const tenant = "keeper"
	first := postSilence(t, p, tenant, "before a graceful restart")

	p.Restart()
	code, body := amRequest(t, p, tenant, http.MethodGet, "/alertmanager/api/v2/silence/"+first, "")
	require.Equal(t, http.StatusOK, code, "after a graceful restart: %s", body)
	require.Contains(t, body, `"state":"active"`)

	second := postSilence(t, p, tenant, "before kill -9")
	snapshot := filepath.Join(p.DataDir(), "bucket", "alerts", tenant, "silences")
	harness.Eventually(t, 15*time.Second, 200*time.Millisecond, "a snapshot holding the second silence", func() error {
		b, err := os.ReadFile(snapshot)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte(second)) {
			return fmt.Errorf("%s does not hold silence %s yet", snapshot, second)
		}
		return nil
	})
	p.Kill()
	p.Start()
	for _, id := range []string{first, second} {
		code, body := amRequest(t, p, tenant, http.MethodGet, "/alertmanager/api/v2/silence/"+id, "")
		require.Equal(t, http.StatusOK, code, "silence %s after kill -9: %s", id, body)
		require.Contains(t, body, `"state":"active"`)
	}
}

// TestAlertmanagerBadInput: configurations that cannot run, or are over a
// limit, are refused with 400 and the reason, and nothing is stored.
func TestAlertmanagerBadInput(t *testing.T) {
	t.Parallel()
	p := startMeridianAlertmanager(t, "-alertmanager.max-templates-count=1", "-alertmanager.max-config-size-bytes=1000")
	const tenant = "careless"
	valid := "alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r}]\n"

	for _, tc := range []struct {
		name, body, want string
	}{
		{"does not parse", "alertmanager_config: |\n  route: [\n", "err-meridian-alertmanager-invalid-config: alertmanager_config does not load"},
		{"not the envelope", "route: {receiver: r}\n", "field route not found"},
		{"invalid receiver", "alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r, webhook_configs: [{url: 'not a url'}]}]\n", "err-meridian-alertmanager-invalid-config"},
		{"undefined receiver", "alertmanager_config: |\n  route: {receiver: nobody}\n  receivers: [{name: r}]\n", `undefined receiver "nobody"`},
		{"server file", "alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r, webhook_configs: [{url_file: /etc/hostname}]}]\n", "url_file reads a file of the server"},
		{"template does not parse", valid + "template_files:\n  a.tmpl: '{{ define \"x\" }}'\n", `template file "a.tmpl" does not parse`},
		{"too many templates", valid + "template_files:\n  a.tmpl: a\n  b.tmpl: b\n", "err-meridian-alertmanager-too-many-templates: the configuration has 2 template files, more than the limit of 1"},
		{"too big", valid + "template_files:\n  a.tmpl: '" + strings.Repeat("x", 1000) + "'\n", "err-meridian-alertmanager-config-too-large"},
	} {
		code, body := amRequest(t, p, tenant, http.MethodPost, "/api/v1/alerts", tc.body)
		require.Equal(t, http.StatusBadRequest, code, "%s: %s", tc.name, body)
		require.Contains(t, body, tc.want, tc.name)
		code, body = amRequest(t, p, tenant, http.MethodGet, "/api/v1/alerts", "")
		require.Equal(t, http.StatusNotFound, code, "%s: a refused configuration was stored: %s", tc.name, body)
	}
	require.NoDirExists(t, filepath.Join(p.DataDir(), "bucket", "alerts", tenant))

	code, body := amRequest(t, p, tenant, http.MethodPost, "/api/v1/alerts", valid)
	require.Equal(t, http.StatusCreated, code, body)
}

// TestAlertmanagerInMonolith: -target=all runs the Alertmanager with its
// embedded defaults: a tenant without a configuration runs the fallback one
// and its alerts are accepted at the URL the ruler and Prometheus use.
func TestAlertmanagerInMonolith(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{})
	code, body := amRequest(t, p, "mono", http.MethodPost, "/alertmanager/api/v2/alerts", `[{"labels":{"alertname":"FromRuler"}}]`)
	require.Equal(t, http.StatusOK, code, body)
	code, body = amRequest(t, p, "mono", http.MethodGet, "/alertmanager/api/v2/status", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "empty-receiver", "the built-in fallback configuration is in force")
	code, body = amRequest(t, p, "mono", http.MethodGet, "/alertmanager/api/v2/receivers", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"name":"empty-receiver"`)
	code, body = amRequest(t, p, "mono", http.MethodGet, "/alertmanager/api/v2/alerts/groups", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"alertname":"FromRuler"`)
	code, body = amRequest(t, p, "mono", http.MethodGet, "/api/v1/alerts", "")
	require.Equal(t, http.StatusNotFound, code, body)
}

// TestRulerToBuiltinAlertmanager: in one process, the ruler's alerts reach
// the built-in Alertmanager (no -ruler.alertmanager-url), which routes them
// with the tenant's configuration to its webhook.
func TestRulerToBuiltinAlertmanager(t *testing.T) {
	t.Parallel()
	hook := startAMWebhook(t)
	p := harness.StartMeridian(t, harness.Options{Args: rulerArgs})
	const tenant = "ruled"

	code, body := amRequest(t, p, tenant, http.MethodPost, "/api/v1/alerts", webhookAMConfig(hook.srv.URL))
	require.Equal(t, http.StatusCreated, code, body)
	code, body = rulesCall(t, p, tenant, http.MethodPost, rulesPath+"/ns", "name: always\nrules:\n- alert: AlwaysFiring\n  expr: vector(1)\n  labels:\n    severity: page\n")
	require.Equal(t, http.StatusAccepted, code, body)

	firing := hook.waitFor(t, "firing")
	require.NotEmpty(t, firing.Alerts)
	require.Equal(t, "AlwaysFiring", firing.Alerts[0].Labels["alertname"])
	require.Equal(t, "page", firing.Alerts[0].Labels["severity"])

	// The other tenant's Alertmanager has none of it.
	code, body = amRequest(t, p, "other", http.MethodGet, "/alertmanager/api/v2/alerts", "")
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `[]`, body)
}
