package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/meridianhq/meridian/integration/harness"
)

// The mixin is built by scripts/production.sh into production/mixin/out.
const mixinBuildHint = "run `bash scripts/production.sh` (or `make production`) first: it builds production/mixin/out/"

// TestMixin checks the built dashboards, alerts and recording rules: every
// dashboard panel uses the datasource variable and has a title and a unit,
// every dashboard has cluster and namespace (or job) variables, and every
// metric name any query or alert uses is exposed on /metrics by a running
// monolith or a small cluster (distributor, ingester, querier,
// query-frontend), or is a recording rule of rules.yaml.
func TestMixin(t *testing.T) {
	t.Parallel()
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	out := filepath.Join(root, "production", "mixin", "out")
	dashFiles, _ := filepath.Glob(filepath.Join(out, "dashboards", "*.json"))
	if len(dashFiles) == 0 {
		t.Fatalf("no dashboards in %s: %s", filepath.Join(out, "dashboards"), mixinBuildHint)
	}
	for _, f := range []string{"alerts.yaml", "rules.yaml"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatalf("%s: %v: %s", filepath.Join(out, f), err, mixinBuildHint)
		}
	}

	// uses maps a metric name to where it is used.
	uses := map[string][]string{}
	for _, f := range dashFiles {
		for where, expr := range checkDashboard(t, f) {
			for _, name := range metricNames(t, where, expr) {
				uses[name] = append(uses[name], where)
			}
		}
	}
	recorded := map[string]bool{}
	for _, f := range []string{"alerts.yaml", "rules.yaml"} {
		for _, r := range readRules(t, filepath.Join(out, f)) {
			where := f + ": " + r.Alert + r.Record
			if r.Record != "" {
				recorded[r.Record] = true
			}
			for _, name := range metricNames(t, where, r.Expr) {
				uses[name] = append(uses[name], where)
			}
		}
	}
	require.NotEmpty(t, uses, "no metric names found in the mixin")
	checkAlertDocs(t, root, readRules(t, filepath.Join(out, "alerts.yaml")))

	exposed := map[string]bool{}
	for _, fams := range exposedMetrics(t) {
		for name, mf := range fams {
			exposed[name] = true
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				exposed[name+"_bucket"], exposed[name+"_sum"], exposed[name+"_count"] = true, true, true
			case dto.MetricType_SUMMARY:
				exposed[name+"_sum"], exposed[name+"_count"] = true, true
			}
		}
	}

	var missing []string
	for name, where := range uses {
		if exposed[name] || recorded[name] {
			continue
		}
		sort.Strings(where)
		missing = append(missing, fmt.Sprintf("%s (used in %s)", name, strings.Join(where, "; ")))
	}
	sort.Strings(missing)
	require.Emptyf(t, missing, "metrics used by the mixin that neither a monolith nor a cluster exposes, and no recording rule defines:\n  %s", strings.Join(missing, "\n  "))
	t.Logf("%d metric names used by the mixin, all exposed or recorded", len(uses))
}

// checkDashboard checks one dashboard's variables and panels and returns
// its queries keyed by "file: panel title [refId]".
func checkDashboard(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var dash struct {
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
		Panels []dashPanel `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &dash), path)
	file := filepath.Base(path)
	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Errorf("%s: no datasource variable of type datasource", file)
	}
	if vars["cluster"] == "" {
		t.Errorf("%s: no cluster variable", file)
	}
	if vars["namespace"] == "" && vars["job"] == "" {
		t.Errorf("%s: no namespace or job variable", file)
	}
	exprs := map[string]string{}
	var walk func([]dashPanel)
	panels := 0
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			panels++
			where := fmt.Sprintf("%s: panel %q", file, p.Title)
			if strings.TrimSpace(p.Title) == "" {
				t.Errorf("%s: a panel (id %d) has no title", file, p.ID)
			}
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s has no unit", where)
			}
			if !usesDatasourceVar(p.Datasource) {
				t.Errorf("%s: datasource %s is not the ${datasource} variable", where, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s has no queries", where)
			}
			for _, tg := range p.Targets {
				if len(tg.Datasource) > 0 && !usesDatasourceVar(tg.Datasource) {
					t.Errorf("%s [%s]: datasource %s is not the ${datasource} variable", where, tg.RefID, tg.Datasource)
				}
				exprs[fmt.Sprintf("%s [%s]", where, tg.RefID)] = tg.Expr
			}
		}
	}
	walk(dash.Panels)
	if panels == 0 {
		t.Errorf("%s has no panels", file)
	}
	return exprs
}

type dashPanel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Datasource  json.RawMessage `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr       string          `json:"expr"`
		RefID      string          `json:"refId"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

// usesDatasourceVar accepts "$datasource", "${datasource}" or an object
// whose uid is one of them.
func usesDatasourceVar(raw json.RawMessage) bool {
	isVar := func(s string) bool { return s == "$datasource" || s == "${datasource}" }
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return isVar(s)
	}
	var obj struct {
		UID string `json:"uid"`
	}
	return json.Unmarshal(raw, &obj) == nil && isVar(obj.UID)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert  string `yaml:"alert"`
	Record string `yaml:"record"`
	Expr   string `yaml:"expr"`
}

func readRules(t *testing.T, path string) []rule {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.Unmarshal(data, &rf), path)
	var out []rule
	for _, g := range rf.Groups {
		out = append(out, g.Rules...)
	}
	require.NotEmpty(t, out, "%s has no rules", path)
	return out
}

var (
	grafanaRangeVar = regexp.MustCompile(`\$__(rate_interval|interval|range)\b`)
	grafanaVar      = regexp.MustCompile(`\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?`)
)

// metricNames parses a PromQL expression (Grafana variables replaced by
// stand-ins) and returns the metric names of its selectors.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e := grafanaRangeVar.ReplaceAllString(expr, "5m")
	e = grafanaVar.ReplaceAllString(e, "x")
	ast, err := parser.NewParser(parser.Options{}).ParseExpr(e)
	if err != nil {
		t.Errorf("%s: query does not parse: %v\n%s", where, err, expr)
		return nil
	}
	var names []string
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name != "" {
			names = append(names, vs.Name)
			return nil
		}
		t.Errorf("%s: a selector without a metric name: %s", where, vs)
		return nil
	})
	if len(names) == 0 {
		t.Errorf("%s: no metric in %q", where, expr)
	}
	return names
}

// exposedMetrics starts a monolith and a small cluster, drives traffic
// through them so that labelled metrics have series (writes, a discarded
// and a rejected sample, queries, a request without a tenant), and returns
// every process' /metrics.
func exposedMetrics(t *testing.T) []map[string]*dto.MetricFamily {
	t.Helper()
	mono := harness.StartMeridian(t, harness.Options{Name: "monolith", Args: rulerArgs})
	exerciseRulesAndAlerts(t, mono)

	c := harness.NewCluster(t, harness.ClusterOptions{ReplicationFactor: 1})
	ing := c.StartIngester("ingester-1", "zone-a")
	dist := c.StartDistributor(false)
	q := c.StartQuerier()
	fe := harness.StartMeridian(t, harness.Options{
		Target: "query-frontend",
		Name:   "query-frontend",
		Args:   []string{"-frontend.downstream-url=" + q.URL()},
	})

	now := time.Now().Truncate(time.Second)
	for _, p := range []struct {
		write, read *harness.Process
	}{{mono, mono}, {dist, fe}} {
		good := harness.Series([]string{"__name__", "mixin_check", "job", "test"}, harness.Sample(now, 1))
		code, body := p.write.Push("mixin", good)
		requirePushed(t, code, body)
		// An invalid label name: the distributor discards the sample.
		bad := harness.Series([]string{"__name__", "mixin_check", "bad-label", "x"}, harness.Sample(now, 1))
		code, _ = p.write.Push("mixin", bad)
		require.Equal(t, 400, code, "a series with an invalid label name is refused")
		// An older sample of the same series: the ingester rejects it.
		old := harness.Series([]string{"__name__", "mixin_check", "job", "test"}, harness.Sample(now.Add(-time.Minute), 2))
		code, _ = p.write.Push("mixin", old)
		require.Equal(t, 400, code, "an out-of-order sample is refused")

		r := p.read.Query("mixin", "mixin_check", now)
		require.NotEmpty(t, r.Vector(t), "query through %s", p.read.URL())
		p.read.QueryRange("mixin", "rate(mixin_check[5m])", now.Add(-time.Hour), now, time.Minute)
		code, _ = p.read.Get("/prometheus/api/v1/query?query=up") // no tenant: 401
		require.Equal(t, 401, code)
	}

	var all []map[string]*dto.MetricFamily
	for _, p := range []*harness.Process{mono, ing, dist, q, fe} {
		all = append(all, p.Metrics())
	}
	return all
}

// checkAlertDocs checks that every alert has its runbook section and a row
// in docs/operations.md's alert table, so the docs cannot lag the mixin.
func checkAlertDocs(t *testing.T, root string, alerts []rule) {
	t.Helper()
	runbooks, err := os.ReadFile(filepath.Join(root, "production", "mixin", "runbooks.md"))
	require.NoError(t, err)
	operations, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	require.NoError(t, err)
	n := 0
	for _, r := range alerts {
		if r.Alert == "" {
			continue
		}
		n++
		if !strings.Contains(string(runbooks), "\n## "+r.Alert+"\n") {
			t.Errorf("alert %s has no section '## %s' in production/mixin/runbooks.md", r.Alert, r.Alert)
		}
		if !strings.Contains(string(operations), "\n| "+r.Alert+" |") {
			t.Errorf("alert %s has no row in docs/operations.md's alert table", r.Alert)
		}
	}
	require.NotZero(t, n, "alerts.yaml has no alerts")
}

// exerciseRulesAndAlerts makes the monolith's ruler evaluate a group with a
// firing alert and its Alertmanager notify a webhook, so the per-tenant
// rule and notification metrics (which appear only then) are exposed.
func exerciseRulesAndAlerts(t *testing.T, p *harness.Process) {
	t.Helper()
	hook := startWebhook(t)
	amConfig := fmt.Sprintf(`alertmanager_config: |
  route:
    receiver: hook
    group_wait: 0s
    group_interval: 1s
  receivers:
  - name: hook
    webhook_configs:
    - url: http://%s/
`, hook.addr)
	code, body := rulesCall(t, p, "mixin", http.MethodPost, "/api/v1/alerts", amConfig)
	require.Equal(t, http.StatusCreated, code, body)
	group := "name: mixin\ninterval: 1s\nrules:\n- record: mixin:one\n  expr: vector(1)\n- alert: MixinAlways\n  expr: vector(1)\n"
	code, body = rulesCall(t, p, "mixin", http.MethodPost, rulesPath+"/mixin", group)
	require.Equal(t, http.StatusAccepted, code, body)
	harness.Eventually(t, 30*time.Second, 200*time.Millisecond, "a rule evaluated and a notification sent", func() error {
		for _, m := range []string{"prometheus_rule_evaluations_total", "meridian_alertmanager_notifications_total"} {
			if v, _ := p.Metric(m, map[string]string{"tenant": "mixin"}); v == 0 {
				return fmt.Errorf("%s{tenant=\"mixin\"} is 0", m)
			}
		}
		if !hook.received("firing", map[string]string{"alertname": "MixinAlways"}) {
			return fmt.Errorf("the webhook has no MixinAlways notification yet")
		}
		return nil
	})
}
