package ruler

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/limits"
)

func TestParseGroups(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, tc := range []struct {
		name, body, err string
		groups          int
	}{
		{name: "one group", body: "name: g\ninterval: 1m\nrules:\n- record: a:b\n  expr: sum(up)\n", groups: 1},
		{name: "rule file", body: "groups:\n- name: g\n  rules: [{record: 'a:b', expr: up}]\n- name: h\n  rules: [{alert: A, expr: up}]\n", groups: 2},
		{name: "not YAML", body: "name: [", err: "not YAML"},
		{name: "empty", body: "", err: "empty"},
		{name: "unknown field", body: "name: g\nrulez: []\n", err: "field rulez not found"},
		{name: "bad PromQL", body: "name: g\nrules:\n- record: a:b\n  expr: sum(\n", err: `group "g", rule 1 "a:b": could not parse expression`},
		{name: "bad template", body: "name: g\nrules:\n- alert: A\n  expr: up\n  annotations: {s: '{{ .X '}\n", err: `group "g", rule 1 "A"`},
		{name: "repeated group", body: "groups:\n- name: g\n  rules: [{record: 'a:b', expr: up}]\n- name: g\n  rules: [{record: 'a:c', expr: up}]\n", err: `groupname: "g" is repeated`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs, err := parseGroups([]byte(tc.body), p)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Len(t, gs, tc.groups)
		})
	}
}

func TestCheckLimits(t *testing.T) {
	l := limits.Limits{RulerMaxRuleGroupsPerTenant: 2, RulerMaxRulesPerRuleGroup: 1, RulerMinEvaluationInterval: model.Duration(10 * time.Second)}
	g := func(name string, interval time.Duration, rules int) rulefmt.RuleGroup {
		return rulefmt.RuleGroup{Name: name, Interval: model.Duration(interval), Rules: make([]rulefmt.Rule, rules)}
	}
	require.NoError(t, checkLimits([]rulefmt.RuleGroup{g("a", 0, 1)}, 1, l, time.Minute))
	require.ErrorContains(t, checkLimits([]rulefmt.RuleGroup{g("a", 0, 1)}, 2, l, time.Minute), ErrIDMaxRuleGroups)
	require.ErrorContains(t, checkLimits([]rulefmt.RuleGroup{g("a", 0, 2)}, 0, l, time.Minute), ErrIDMaxRulesPerGroup)
	require.ErrorContains(t, checkLimits([]rulefmt.RuleGroup{g("a", 5*time.Second, 1)}, 0, l, time.Minute), ErrIDMinEvalInterval)
	// A group without an interval has the default one.
	require.ErrorContains(t, checkLimits([]rulefmt.RuleGroup{g("a", 0, 1)}, 0, l, time.Second), "-ruler.min-evaluation-interval")
}
