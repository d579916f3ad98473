package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

const rulesPath = "/prometheus/config/v1/rules"

// rulerArgs make rules evaluate and groups move fast.
var rulerArgs = []string{
	"-ruler.evaluation-interval=1s",
	"-ruler.poll-interval=2s",
	"-ruler.resend-delay=1s",
	"-ruler.ring.heartbeat-period=1s",
	"-ruler.ring.heartbeat-timeout=4s",
}

// rulesCall sends a config API request as tenant.
func rulesCall(t *testing.T, p *harness.Process, tenant, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.URL()+path, rd)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", tenant)
	req.Header.Set("Content-Type", "application/yaml")
	code, b, err := p.Client(tenant).Do(req)
	require.NoError(t, err)
	return code, string(b)
}

// webhook records what an Alertmanager's webhook receiver gets.
type webhook struct {
	mtx  sync.Mutex
	msgs []webhookMsg
	srv  *http.Server
	addr string
}

type webhookMsg struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func startWebhook(t *testing.T) *webhook {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(harness.NewHost(), "0"))
	require.NoError(t, err)
	w := &webhook{addr: l.Addr().String()}
	w.srv = &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var m webhookMsg
		if err := json.NewDecoder(r.Body).Decode(&m); err == nil {
			w.mtx.Lock()
			w.msgs = append(w.msgs, m)
			w.mtx.Unlock()
		}
	})}
	go func() { _ = w.srv.Serve(l) }()
	t.Cleanup(func() { _ = w.srv.Close() })
	return w
}

// received finds an alert with the labels in the given status.
func (w *webhook) received(status string, want map[string]string) bool {
	w.mtx.Lock()
	defer w.mtx.Unlock()
	for _, m := range w.msgs {
		for _, a := range m.Alerts {
			if a.Status != status {
				continue
			}
			ok := true
			for k, v := range want {
				ok = ok && a.Labels[k] == v
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// startAlertmanager runs the Alertmanager built by
// scripts/build-alertmanager.sh ($MERIDIAN_ALERTMANAGER), routing
// everything to the webhook at once.
func startAlertmanager(t *testing.T, hook string) string {
	t.Helper()
	bin := os.Getenv("MERIDIAN_ALERTMANAGER")
	if bin == "" {
		t.Skip("MERIDIAN_ALERTMANAGER is not set: build the Alertmanager with scripts/build-alertmanager.sh and set it to the printed path")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: http://%s/
    send_resolved: true
`, hook)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o644))
	host := harness.NewHost()
	addr := net.JoinHostPort(host, strconv.Itoa(harness.FreePort(t, host)))
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	logf, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("alertmanager log:\n%s", b)
		}
	})
	harness.Eventually(t, 30*time.Second, 200*time.Millisecond, "alertmanager ready", func() error {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return "http://" + addr
}

// TestRulerAlertsAndRecordingRules: a recording rule and an alerting rule
// uploaded through the config API; the alert reaches a real Alertmanager's
// webhook while the data is high, resolves when it recovers, and the
// recorded series holds exactly twice the source value.
func TestRulerAlertsAndRecordingRules(t *testing.T) {
	t.Parallel()
	hook := startWebhook(t)
	am := startAlertmanager(t, hook.addr)
	p := harness.StartMeridian(t, harness.Options{Args: append([]string{"-ruler.alertmanager-url=" + am}, rulerArgs...)})
	const tenant = "ruler-a"
	c := p.Client(tenant)

	// The source gauge, pushed every 250ms with the current value.
	var value atomic.Int64
	value.Store(100)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				s := harness.Series([]string{"__name__", "it_temp", "job", "oven"}, harness.Sample(time.Now(), float64(value.Load())))
				_, _ = c.Push(s)
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })

	group := `name: oven
interval: 1s
rules:
- record: job:it_temp:x2
  expr: it_temp * 2
- alert: OvenHot
  expr: it_temp > 50
  for: 2s
  labels:
    severity: page
  annotations:
    summary: "oven {{ $labels.job }} at {{ $value }}"
`
	code, body := rulesCall(t, p, tenant, http.MethodPost, rulesPath+"/kitchen", group)
	require.Equal(t, http.StatusAccepted, code, body)
	code, body = rulesCall(t, p, tenant, http.MethodGet, rulesPath+"/kitchen/oven", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "OvenHot")

	fired := time.Now()
	want := map[string]string{"alertname": "OvenHot", "job": "oven", "severity": "page"}
	// for (2s) + two intervals + group_wait (1s), plus slack for start-up.
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, "firing notification", func() error {
		if hook.received("firing", want) {
			return nil
		}
		return fmt.Errorf("no firing OvenHot yet")
	})
	t.Logf("firing notification after %s", time.Since(fired))

	r := c.API(harness.APIPrefix+"/alerts", nil)
	r.RequireSuccess(t)
	require.Contains(t, string(r.Data), `"state":"firing"`)
	r = c.API(harness.APIPrefix+"/rules", url.Values{"type": {"record"}})
	r.RequireSuccess(t)
	require.Contains(t, string(r.Data), "job:it_temp:x2")
	require.NotContains(t, string(r.Data), "OvenHot")

	value.Store(10)
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, "resolved notification", func() error {
		if hook.received("resolved", want) {
			return nil
		}
		return fmt.Errorf("no resolved OvenHot yet")
	})

	// The recorded series: every sample is twice a value the gauge had.
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, "recorded 20", func() error {
		v := c.Query("job:it_temp:x2", time.Now()).Vector(t)
		if len(v) == 1 && v[0].Value == 20 {
			return nil
		}
		return fmt.Errorf("job:it_temp:x2 = %v, want 20", v)
	})
	// The raw samples recorded since the upload.
	window := time.Since(fired).Round(time.Second) + 2*time.Second
	m := c.Query(fmt.Sprintf("job:it_temp:x2[%ds]", int(window.Seconds())), time.Now()).Matrix(t)
	require.Len(t, m, 1)
	seen := map[float64]bool{}
	for _, s := range m[0].Values {
		require.Contains(t, []float64{200, 20}, float64(s.Value), "recorded %v at %s", s.Value, s.Timestamp)
		seen[float64(s.Value)] = true
	}
	require.True(t, seen[200] && seen[20], "recorded values %v", m[0].Values)
}

// TestRulerTenantIsolationAndBadInput: tenant B's rules never see tenant
// A's series, B cannot read, overwrite or delete A's rules, and bad uploads
// are refused with 400 and store nothing.
func TestRulerTenantIsolationAndBadInput(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{Args: append([]string{"-ruler.max-rules-per-rule-group=2", "-ruler.min-evaluation-interval=1s"}, rulerArgs...)})
	a, b := p.Client("tenant-a"), p.Client("tenant-b")
	mustPush(t, a, harness.Series([]string{"__name__", "it_secret", "owner", "a"}, harness.Sample(time.Now(), 42)))

	groupA := "name: a-group\ninterval: 1s\nrules:\n- record: a:secret\n  expr: sum(it_secret)\n"
	code, body := rulesCall(t, p, "tenant-a", http.MethodPost, rulesPath+"/shared", groupA)
	require.Equal(t, http.StatusAccepted, code, body)
	// B uses the same namespace and group name: its own, not A's.
	groupB := "name: a-group\ninterval: 1s\nrules:\n- record: b:secret\n  expr: count(it_secret) or vector(0)\n"
	code, body = rulesCall(t, p, "tenant-b", http.MethodPost, rulesPath+"/shared", groupB)
	require.Equal(t, http.StatusAccepted, code, body)

	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, "both rules evaluated", func() error {
		va := a.Query("a:secret", time.Now()).Vector(t)
		vb := b.Query("b:secret", time.Now()).Vector(t)
		if len(va) != 1 || va[0].Value != 42 || len(vb) != 1 {
			return fmt.Errorf("a:secret=%v b:secret=%v", va, vb)
		}
		return nil
	})
	// B's rule sees none of A's series, and its result is B's only.
	vb := b.Query("b:secret", time.Now()).Vector(t)
	require.EqualValues(t, 0, vb[0].Value)
	require.Empty(t, b.Query("a:secret", time.Now()).Vector(t))
	require.Empty(t, a.Query("b:secret", time.Now()).Vector(t))

	// B reads only its group, and deleting its own leaves A's.
	code, body = rulesCall(t, p, "tenant-b", http.MethodGet, rulesPath+"/shared/a-group", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "b:secret")
	require.NotContains(t, body, "a:secret")
	code, _ = rulesCall(t, p, "tenant-b", http.MethodDelete, rulesPath+"/shared", "")
	require.Equal(t, http.StatusAccepted, code)
	code, _ = rulesCall(t, p, "tenant-b", http.MethodDelete, rulesPath+"/shared", "")
	require.Equal(t, http.StatusNotFound, code)
	code, body = rulesCall(t, p, "tenant-a", http.MethodGet, rulesPath, "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "a:secret")
	r := b.API(harness.APIPrefix+"/rules", nil)
	r.RequireSuccess(t)
	require.NotContains(t, string(r.Data), "a:secret")

	bad := []struct{ name, body, reason string }{
		{"unparseable YAML", "name: [x\n", "not YAML"},
		{"unknown field", "name: g\ninterval: 1s\nrulez: []\n", "field rulez not found"},
		{"invalid PromQL", "name: g\ninterval: 1s\nrules:\n- record: x:y\n  expr: sum(up\n", `rule 1 "x:y"`},
		{"invalid template", "name: g\ninterval: 1s\nrules:\n- alert: A\n  expr: up\n  annotations:\n    s: '{{ .Foo '\n", `rule 1 "A"`},
		{"duplicate group names", "groups:\n- name: g\n  interval: 1s\n  rules: [{record: 'x:y', expr: up}]\n- name: g\n  interval: 1s\n  rules: [{record: 'x:z', expr: up}]\n", "repeated"},
		{"too many rules", "name: g\ninterval: 1s\nrules:\n- record: a:b\n  expr: up\n- record: a:c\n  expr: up\n- record: a:d\n  expr: up\n", "ruler.max-rules-per-rule-group"},
		{"interval too short", "name: g\ninterval: 500ms\nrules:\n- record: a:b\n  expr: up\n", "ruler.min-evaluation-interval"},
	}
	for _, tc := range bad {
		code, body := rulesCall(t, p, "tenant-b", http.MethodPost, rulesPath+"/bad", tc.body)
		require.Equal(t, http.StatusBadRequest, code, "%s: %s", tc.name, body)
		require.Contains(t, body, tc.reason, tc.name)
		code, body = rulesCall(t, p, "tenant-b", http.MethodGet, rulesPath+"/bad", "")
		require.Equal(t, http.StatusNotFound, code, "%s stored something: %s", tc.name, body)
	}
}
