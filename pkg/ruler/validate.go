package ruler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/meridianhq/meridian/pkg/limits"
)

// Stable IDs of the rejections of the configuration API (docs/errors.md).
const (
	ErrIDInvalidRuleGroup = "err-meridian-ruler-invalid-rule-group"
	ErrIDMaxRuleGroups    = "err-meridian-ruler-max-rule-groups-per-tenant"
	ErrIDMaxRulesPerGroup = "err-meridian-ruler-max-rules-per-rule-group"
	ErrIDMinEvalInterval  = "err-meridian-ruler-min-evaluation-interval"
)

// parseGroups decodes a POST body: one rule group (the Cortex/Mimir API),
// or a whole Prometheus rule file ("groups:" with a list) so a rule file
// can be uploaded as a namespace at once. Every group is checked as
// Prometheus checks a rule file: unknown fields, names, PromQL, label and
// annotation templates, and names repeated in the body. The error names
// the group and the rule.
func parseGroups(body []byte, p parser.Parser) ([]rulefmt.RuleGroup, error) {
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("the body is not YAML: %w", err)
	}
	if len(top) == 0 {
		return nil, errors.New("the body is empty: send one rule group in YAML (name, interval, rules)")
	}
	var file rulefmt.RuleGroups
	if _, ok := top["groups"]; ok {
		if err := decodeStrict(body, &file); err != nil {
			return nil, err
		}
	} else {
		var g rulefmt.RuleGroup
		if err := decodeStrict(body, &g); err != nil {
			return nil, err
		}
		file.Groups = []rulefmt.RuleGroup{g}
	}
	if len(file.Groups) == 0 {
		return nil, errors.New("the rule file has no groups")
	}
	// rulefmt validates a whole file, with its YAML nodes for positions:
	// re-encode what was decoded and let it check that.
	b, err := yaml.Marshal(file)
	if err != nil {
		return nil, fmt.Errorf("encode the rule groups: %w", err)
	}
	_, errs := rulefmt.Parse(b, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		msgs := make([]string, 0, len(errs))
		for _, e := range errs {
			msgs = append(msgs, describeRuleError(e))
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	return file.Groups, nil
}

// describeRuleError drops the line numbers of the re-encoded YAML, which
// are not the user's, and keeps the group and rule names.
func describeRuleError(err error) string {
	var re *rulefmt.Error
	if errors.As(err, &re) {
		msg := "invalid rule"
		if inner := errors.Unwrap(&re.Err); inner != nil {
			msg = inner.Error()
		}
		return fmt.Sprintf("group %q, rule %d %q: %s", re.Group, re.Rule, re.RuleName, msg)
	}
	return lineCol.ReplaceAllString(err.Error(), "")
}

// lineCol matches the "line:col: " positions rulefmt puts first.
var lineCol = regexp.MustCompile(`^(\d+:\d+: )+`)

func decodeStrict(body []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("the body is not a valid rule group: %w", err)
	}
	return nil
}

// checkLimits checks the groups against the tenant's limits. existing is
// how many groups the tenant has that the upload does not replace.
func checkLimits(groups []rulefmt.RuleGroup, existing int, l limits.Limits, defaultInterval time.Duration) error {
	if maxGroups := l.RulerMaxRuleGroupsPerTenant; maxGroups > 0 && existing+len(groups) > maxGroups {
		return fmt.Errorf("%s: the tenant would have %d rule groups, more than its limit of %d; delete groups, or raise -ruler.max-rule-groups-per-tenant (per-tenant override ruler_max_rule_groups_per_tenant)", ErrIDMaxRuleGroups, existing+len(groups), maxGroups)
	}
	for _, g := range groups {
		if maxRules := l.RulerMaxRulesPerRuleGroup; maxRules > 0 && len(g.Rules) > maxRules {
			return fmt.Errorf("%s: group %q has %d rules, more than the limit of %d per group; split the group, or raise -ruler.max-rules-per-rule-group (per-tenant override ruler_max_rules_per_rule_group)", ErrIDMaxRulesPerGroup, g.Name, len(g.Rules), maxRules)
		}
		interval := time.Duration(g.Interval)
		if interval == 0 {
			interval = defaultInterval
		}
		if minInterval := time.Duration(l.RulerMinEvaluationInterval); interval < minInterval {
			return fmt.Errorf("%s: group %q is evaluated every %s, more often than the minimum of %s; set a longer interval, or lower -ruler.min-evaluation-interval (per-tenant override ruler_min_evaluation_interval)", ErrIDMinEvalInterval, g.Name, interval, minInterval)
		}
	}
	return nil
}
