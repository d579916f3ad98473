package ruler

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/go-kit/log/level"
	"github.com/gorilla/mux"
	"github.com/grafana/dskit/tenant"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/rules"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"gopkg.in/yaml.v3"
)

// maxRuleGroupBody bounds a POSTed rule group (or rule file).
const maxRuleGroupBody = 1 << 20

// ListRules serves GET /prometheus/config/v1/rules: every namespace of the
// tenant, as YAML mapping each namespace to its groups.
func (r *Ruler) ListRules(w http.ResponseWriter, req *http.Request) {
	r.serveNamespaces(w, req, "")
}

// GetNamespace serves GET /prometheus/config/v1/rules/{namespace}.
func (r *Ruler) GetNamespace(w http.ResponseWriter, req *http.Request) {
	ns, ok := pathVar(w, req, "namespace")
	if ok {
		r.serveNamespaces(w, req, ns)
	}
}

func (r *Ruler) serveNamespaces(w http.ResponseWriter, req *http.Request, namespace string) {
	tenantID, ok := tenantOf(w, req)
	if !ok {
		return
	}
	keys, err := r.store.List(req.Context(), tenantID, namespace)
	if err != nil {
		r.serverError(w, tenantID, err)
		return
	}
	out := map[string][]rulefmt.RuleGroup{}
	for _, k := range keys {
		g, err := r.store.Get(req.Context(), tenantID, k.Namespace, k.Group)
		if r.store.IsNotFound(err) {
			continue
		}
		if err != nil {
			r.serverError(w, tenantID, err)
			return
		}
		out[k.Namespace] = append(out[k.Namespace], g)
	}
	if len(out) == 0 {
		if namespace != "" {
			http.Error(w, fmt.Sprintf("no rule groups in namespace %q", namespace), http.StatusNotFound)
		} else {
			http.Error(w, "no rule groups found for this tenant", http.StatusNotFound)
		}
		return
	}
	writeYAML(w, http.StatusOK, out)
}

// GetGroup serves GET /prometheus/config/v1/rules/{namespace}/{group}.
func (r *Ruler) GetGroup(w http.ResponseWriter, req *http.Request) {
	tenantID, ok := tenantOf(w, req)
	if !ok {
		return
	}
	ns, ok1 := pathVar(w, req, "namespace")
	name, ok2 := pathVar(w, req, "group")
	if !ok1 || !ok2 {
		return
	}
	g, err := r.store.Get(req.Context(), tenantID, ns, name)
	if r.store.IsNotFound(err) {
		http.Error(w, fmt.Sprintf("no rule group %q in namespace %q", name, ns), http.StatusNotFound)
		return
	}
	if err != nil {
		r.serverError(w, tenantID, err)
		return
	}
	writeYAML(w, http.StatusOK, g)
}

// PostNamespace serves POST /prometheus/config/v1/rules/{namespace}: one
// rule group in YAML (or a rule file with several) is validated, checked
// against the tenant's limits and stored, replacing the group of the same
// name. Nothing is stored when anything is wrong.
func (r *Ruler) PostNamespace(w http.ResponseWriter, req *http.Request) {
	tenantID, ok := tenantOf(w, req)
	if !ok {
		return
	}
	ns, ok := pathVar(w, req, "namespace")
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxRuleGroupBody+1))
	if err != nil {
		http.Error(w, "read the request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxRuleGroupBody {
		http.Error(w, fmt.Sprintf("%s: the rule group is larger than %d bytes; split it", ErrIDInvalidRuleGroup, maxRuleGroupBody), http.StatusBadRequest)
		return
	}
	groups, err := parseGroups(body, r.parser)
	if err != nil {
		http.Error(w, ErrIDInvalidRuleGroup+": "+err.Error(), http.StatusBadRequest)
		return
	}
	keys, err := r.store.List(req.Context(), tenantID, "")
	if err != nil {
		r.serverError(w, tenantID, err)
		return
	}
	existing := 0
	for _, k := range keys {
		replaced := k.Namespace == ns && slices.ContainsFunc(groups, func(g rulefmt.RuleGroup) bool { return g.Name == k.Group })
		if !replaced {
			existing++
		}
	}
	if err := checkLimits(groups, existing, r.limits.Limits(tenantID), r.cfg.EvaluationInterval); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, g := range groups {
		if err := r.store.Put(req.Context(), tenantID, ns, g); err != nil {
			r.serverError(w, tenantID, err)
			return
		}
	}
	level.Info(r.logger).Log("msg", "rule groups stored", "tenant", tenantID, "namespace", ns, "groups", len(groups))
	r.triggerSync()
	writeAccepted(w)
}

// DeleteNamespace serves DELETE /prometheus/config/v1/rules/{namespace}.
func (r *Ruler) DeleteNamespace(w http.ResponseWriter, req *http.Request) {
	tenantID, ok := tenantOf(w, req)
	if !ok {
		return
	}
	ns, ok := pathVar(w, req, "namespace")
	if !ok {
		return
	}
	keys, err := r.store.List(req.Context(), tenantID, ns)
	if err != nil {
		r.serverError(w, tenantID, err)
		return
	}
	if len(keys) == 0 {
		http.Error(w, fmt.Sprintf("no rule groups in namespace %q", ns), http.StatusNotFound)
		return
	}
	for _, k := range keys {
		if err := r.store.Delete(req.Context(), tenantID, k.Namespace, k.Group); err != nil && !r.store.IsNotFound(err) {
			r.serverError(w, tenantID, err)
			return
		}
	}
	level.Info(r.logger).Log("msg", "rule namespace deleted", "tenant", tenantID, "namespace", ns, "groups", len(keys))
	r.triggerSync()
	writeAccepted(w)
}

// DeleteGroup serves DELETE /prometheus/config/v1/rules/{namespace}/{group}.
func (r *Ruler) DeleteGroup(w http.ResponseWriter, req *http.Request) {
	tenantID, ok := tenantOf(w, req)
	if !ok {
		return
	}
	ns, ok1 := pathVar(w, req, "namespace")
	name, ok2 := pathVar(w, req, "group")
	if !ok1 || !ok2 {
		return
	}
	if _, err := r.store.Get(req.Context(), tenantID, ns, name); err != nil {
		if r.store.IsNotFound(err) {
			http.Error(w, fmt.Sprintf("no rule group %q in namespace %q", name, ns), http.StatusNotFound)
			return
		}
		r.serverError(w, tenantID, err)
		return
	}
	if err := r.store.Delete(req.Context(), tenantID, ns, name); err != nil && !r.store.IsNotFound(err) {
		r.serverError(w, tenantID, err)
		return
	}
	level.Info(r.logger).Log("msg", "rule group deleted", "tenant", tenantID, "namespace", ns, "group", name)
	r.triggerSync()
	writeAccepted(w)
}

func (r *Ruler) serverError(w http.ResponseWriter, tenantID string, err error) {
	level.Error(r.logger).Log("msg", "rules configuration API request", "tenant", tenantID, "err", err)
	http.Error(w, "rule store: "+err.Error()+"; retry later", http.StatusInternalServerError)
}

func tenantOf(w http.ResponseWriter, req *http.Request) (string, bool) {
	id, err := tenant.TenantID(req.Context())
	if err != nil {
		http.Error(w, "no valid tenant in the request: "+err.Error()+"; send the header \"X-Scope-OrgID: <tenant>\"", http.StatusUnauthorized)
		return "", false
	}
	return id, true
}

// pathVar returns a path parameter, unescaped ("%2F" in a namespace).
func pathVar(w http.ResponseWriter, req *http.Request, name string) (string, bool) {
	v, err := url.PathUnescape(mux.Vars(req)[name])
	if err != nil || v == "" {
		http.Error(w, fmt.Sprintf("invalid %s in the path %q: give a non-empty, URL-escaped name", name, req.URL.Path), http.StatusBadRequest)
		return "", false
	}
	return v, true
}

func writeYAML(w http.ResponseWriter, code int, v any) {
	b, err := yaml.Marshal(v)
	if err != nil {
		http.Error(w, "encode YAML: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// writeAccepted answers 202 with Mimir's body.
func writeAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"success","data":null,"errorType":"","error":""}`))
}

// PrometheusRules serves GET /prometheus/api/v1/rules in Prometheus'
// format, with its type, rule_name[], rule_group[] and file[] filters.
func (r *Ruler) PrometheusRules(w http.ResponseWriter, req *http.Request) {
	tenantID, ok := tenantOf(w, req)
	if !ok {
		return
	}
	if err := req.ParseForm(); err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", fmt.Errorf("parse form values: %w", err))
		return
	}
	typ := strings.ToLower(req.Form.Get("type"))
	if typ != "" && typ != "alert" && typ != "record" {
		writeAPIError(w, http.StatusBadRequest, "bad_data", fmt.Errorf("invalid type %q: use alert or record", typ))
		return
	}
	names, groups, files := set(req.Form["rule_name[]"]), set(req.Form["rule_group[]"]), set(req.Form["file[]"])
	excludeAlerts := req.Form.Get("exclude_alerts") == "true"
	out := &v1.RuleDiscovery{RuleGroups: []*v1.RuleGroup{}}
	for _, g := range r.groups(tenantID) {
		if !files.has(g.File()) || !groups.has(g.Name()) {
			continue
		}
		rg := &v1.RuleGroup{
			Name:           g.Name(),
			File:           g.File(),
			Interval:       g.Interval().Seconds(),
			Limit:          g.Limit(),
			EvaluationTime: g.GetEvaluationTime().Seconds(),
			LastEvaluation: g.GetLastEvaluation(),
			Rules:          []v1.Rule{},
		}
		for _, rule := range g.Rules() {
			if !names.has(rule.Name()) {
				continue
			}
			lastErr := ""
			if err := rule.LastError(); err != nil {
				lastErr = err.Error()
			}
			switch rule := rule.(type) {
			case *rules.AlertingRule:
				if typ == "record" {
					continue
				}
				var alerts []*v1.Alert
				if !excludeAlerts {
					alerts = toAPIAlerts(rule.ActiveAlerts())
				}
				rg.Rules = append(rg.Rules, v1.AlertingRule{
					State:          rule.State().String(),
					Name:           rule.Name(),
					Query:          rule.Query().String(),
					Duration:       rule.HoldDuration().Seconds(),
					KeepFiringFor:  rule.KeepFiringFor().Seconds(),
					Labels:         rule.Labels(),
					Annotations:    rule.Annotations(),
					Alerts:         alerts,
					Health:         rule.Health(),
					LastError:      lastErr,
					EvaluationTime: rule.GetEvaluationDuration().Seconds(),
					LastEvaluation: rule.GetEvaluationTimestamp(),
					Type:           "alerting",
				})
			case *rules.RecordingRule:
				if typ == "alert" {
					continue
				}
				rg.Rules = append(rg.Rules, v1.RecordingRule{
					Name:           rule.Name(),
					Query:          rule.Query().String(),
					Labels:         rule.Labels(),
					Health:         rule.Health(),
					LastError:      lastErr,
					EvaluationTime: rule.GetEvaluationDuration().Seconds(),
					LastEvaluation: rule.GetEvaluationTimestamp(),
					Type:           "recording",
				})
			}
		}
		// Like Prometheus, a filter by rule drops the groups it empties.
		if len(rg.Rules) == 0 && (typ != "" || len(names) > 0) {
			continue
		}
		out.RuleGroups = append(out.RuleGroups, rg)
	}
	sort.Slice(out.RuleGroups, func(i, j int) bool {
		a, b := out.RuleGroups[i], out.RuleGroups[j]
		return a.File < b.File || a.File == b.File && a.Name < b.Name
	})
	writeAPI(w, out)
}

// PrometheusAlerts serves GET /prometheus/api/v1/alerts: the active alerts
// of the tenant.
func (r *Ruler) PrometheusAlerts(w http.ResponseWriter, req *http.Request) {
	tenantID, ok := tenantOf(w, req)
	if !ok {
		return
	}
	out := &v1.AlertDiscovery{Alerts: []*v1.Alert{}}
	for _, g := range r.groups(tenantID) {
		for _, rule := range g.Rules() {
			if ar, ok := rule.(*rules.AlertingRule); ok {
				out.Alerts = append(out.Alerts, toAPIAlerts(ar.ActiveAlerts())...)
			}
		}
	}
	writeAPI(w, out)
}

func toAPIAlerts(as []*rules.Alert) []*v1.Alert {
	out := make([]*v1.Alert, 0, len(as))
	for _, a := range as {
		activeAt := a.ActiveAt
		al := &v1.Alert{
			Labels:      a.Labels,
			Annotations: a.Annotations,
			State:       a.State.String(),
			ActiveAt:    &activeAt,
			Value:       fmt.Sprintf("%e", a.Value),
		}
		if !a.KeepFiringSince.IsZero() {
			k := a.KeepFiringSince
			al.KeepFiringSince = &k
		}
		out = append(out, al)
	}
	return out
}

type stringSet map[string]bool

// set makes a filter; an empty one matches everything.
func set(vs []string) stringSet {
	s := stringSet{}
	for _, v := range vs {
		s[v] = true
	}
	return s
}

func (s stringSet) has(v string) bool { return len(s) == 0 || s[v] }

func writeAPI(w http.ResponseWriter, data any) {
	b, err := v1.JSONCodec{}.Encode(&v1.Response{Status: "success", Data: data})
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "internal", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func writeAPIError(w http.ResponseWriter, code int, typ string, err error) {
	b, _ := json.Marshal(map[string]string{"status": "error", "errorType": typ, "error": err.Error()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
