// Package api is Graphite's read side in the querier: the /graphite
// endpoints (render, find, expand, tags, functions, ...) and the fetcher
// that reads Graphite series from storage within the tenant's render
// budget. Answers are encoded by package render; globs and tag
// expressions become matchers through package mapping.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/meridianhq/meridian/pkg/graphite/functions"
	"github.com/meridianhq/meridian/pkg/graphite/mapping"
	"github.com/meridianhq/meridian/pkg/graphite/parser"
	"github.com/meridianhq/meridian/pkg/graphite/render"
	"github.com/meridianhq/meridian/pkg/limits"
)

// Version is what /graphite/version answers: the graphite-web release whose
// API this one follows. Grafana enables tags and the function editor from it.
const Version = "1.1.10"

// defaultAutocompleteLimit is graphite-web's TAGDB_AUTOCOMPLETE_LIMIT.
const defaultAutocompleteLimit = 100

// EvalFunc evaluates one parsed target (functions.Eval).
type EvalFunc func(ctx context.Context, req *functions.Request, target *parser.Expr) ([]*functions.Series, error)

// API serves the Graphite read endpoints of one querier over a
// storage.Queryable whose tenant comes from the request context.
type API struct {
	queryable storage.Queryable
	limits    limits.Source
	logger    log.Logger
	now       func() time.Time
	eval      EvalFunc
	values    *valuesPool

	renderSeries prometheus.Histogram
	targets      *prometheus.CounterVec
}

// valuesPoolBytes bounds the value slices kept between renders: the values
// of one render at the default graphite_max_points_per_render (10 M points).
const valuesPoolBytes = 10_000_000 * 8

// New creates the Graphite API.
func New(q storage.Queryable, lim limits.Source, logger log.Logger, reg prometheus.Registerer) *API {
	f := promauto.With(reg)
	return &API{
		queryable: q,
		limits:    lim,
		logger:    logger,
		now:       time.Now,
		eval:      functions.Eval,
		values:    newValuesPool(valuesPoolBytes),
		renderSeries: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "meridian_graphite_render_series",
			Help:    "Series a Graphite render returned.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		targets: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_graphite_render_targets_total",
			Help: "Graphite render targets evaluated, by outcome (ok, invalid, limit, error).",
		}, []string{"outcome"}),
	}
}

// Routes lists the endpoints under /graphite, path → handler.
func (a *API) Routes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"/render":                    a.Render,
		"/metrics/find":              a.Find,
		"/metrics":                   a.Find,
		"/metrics/expand":            a.Expand,
		"/tags":                      a.Tags,
		"/tags/autoComplete/tags":    a.AutoCompleteTags,
		"/tags/autoComplete/values":  a.AutoCompleteValues,
		"/functions":                 a.Functions,
		"/version":                   a.Version,
		"/events/get_data":           a.Events,
		"/tags/findSeries":           a.FindSeries,
		"/tags/autoComplete/tags/":   a.AutoCompleteTags,
		"/tags/autoComplete/values/": a.AutoCompleteValues,
	}
}

// serve runs a handler that reports failure as an error, answered by
// writeError with the right status.
func (a *API) serve(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request) error) {
	if err := h(w, r); err != nil {
		a.writeError(w, r, err)
	}
}

// httpError is an answer other than 200.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	msg := err.Error()
	var he *httpError
	var pme *render.ParamError
	var le *render.LimitError
	var ie *functions.InputError
	var pe *parser.Error
	var se *StorageError
	switch {
	case errors.As(err, &he):
		status = he.status
	case errors.As(err, &pme), errors.As(err, &pe), errors.As(err, &ie):
		status = http.StatusBadRequest
	case errors.As(err, &le):
		status = http.StatusUnprocessableEntity
	case errors.As(err, &se):
		status = se.Status
	case errors.Is(err, context.Canceled):
		status = 499
	}
	if status >= 500 {
		tenant, _ := dskittenant.TenantID(r.Context())
		level.Error(a.logger).Log("msg", "graphite request failed", "tenant", tenant, "path", r.URL.Path, "err", err)
	}
	http.Error(w, msg, status)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// form parses the query string and a POSTed form.
func form(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return badRequest("parse the request parameters: %v", err)
	}
	return nil
}

// timeRange reads from (default -24h) and until (default now) in seconds.
func (a *API) timeRange(r *http.Request, defFrom string) (int64, int64, error) {
	return render.FormRange(r.Form, a.now(), defFrom)
}

func (a *API) tenantLimits(ctx context.Context) (*fetcher, error) {
	tenant, err := dskittenant.TenantID(ctx)
	if err != nil {
		return nil, &httpError{status: http.StatusUnauthorized, msg: "no tenant in the request: set the X-Scope-OrgID header"}
	}
	return newFetcher(a.queryable, a.limits.Limits(tenant), a.values), nil
}

// node is one result of a find: a path and whether it is a leaf (a stored
// series) or a branch (a prefix of longer paths). A path that is both is a
// leaf, as graphite-web merges it.
type node struct {
	path, name string
	leaf       bool
}

// findNodes answers a find glob from the index: the values of the last
// node's label among the paths matching the glob, split into leaves (paths
// of exactly that many nodes) and branches (longer paths).
func (a *API) findNodes(ctx context.Context, query string, from, until int64) ([]node, error) {
	f, err := a.tenantLimits(ctx)
	if err != nil {
		return nil, err
	}
	q, err := a.queryable.Querier(from*1000, until*1000)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	defer q.Close()
	byName := map[string]bool{} // name → leaf
	for _, glob := range mapping.ExpandDottedBraces(query) {
		nodes, err := mapping.SplitNodes(glob)
		if err != nil {
			return nil, badRequest("query %q: %v", query, err)
		}
		last := len(nodes) - 1
		ms, err := mapping.NodeMatchers(nodes)
		if err != nil {
			return nil, badRequest("query %q: %v", query, err)
		}
		// The leaf and branch matchers below each select a non-empty set by
		// themselves, so a query of only "*" nodes needs no node matcher.
		count := strconv.Itoa(len(nodes))
		leafMs := append(append([]*labels.Matcher{}, ms...), labels.MustNewMatcher(labels.MatchEqual, mapping.NodeCountLabel, count))
		// A branch has a next node: one postings lookup, where __gn__!=N
		// would touch every series.
		branchMs := append(append([]*labels.Matcher{}, ms...), labels.MustNewMatcher(labels.MatchNotEqual, mapping.NodeLabel(len(nodes)), ""))
		leaves, _, err := q.LabelValues(ctx, mapping.NodeLabel(last), nil, leafMs...)
		if err != nil {
			return nil, storageError(err)
		}
		branches, _, err := q.LabelValues(ctx, mapping.NodeLabel(last), nil, branchMs...)
		if err != nil {
			return nil, storageError(err)
		}
		for _, b := range branches {
			if _, ok := byName[b]; !ok {
				byName[b] = false
			}
		}
		for _, l := range leaves {
			byName[l] = true
		}
	}
	if err := f.charge(len(byName), 0); err != nil {
		return nil, err
	}
	base := ""
	if i := strings.LastIndexByte(query, '.'); i >= 0 {
		base = query[:i+1]
	}
	out := make([]node, 0, len(byName))
	for name, leaf := range byName {
		out = append(out, node{path: base + name, name: name, leaf: leaf})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// globbedPrefix reports whether a node before the last one of query has a
// glob: its matches then have prefixes other than the query's own.
func globbedPrefix(query string) bool {
	i := strings.LastIndexByte(query, '.')
	return i >= 0 && mapping.HasGlob(query[:i])
}

// completerPaths answers a query with a globbed prefix with the real paths
// it matches, with one lookup of series names per brace expansion of the
// query.
func (a *API) completerPaths(ctx context.Context, query string, from, until int64) ([]node, error) {
	q, err := a.queryable.Querier(from*1000, until*1000)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	defer q.Close()
	f, err := a.tenantLimits(ctx)
	if err != nil {
		return nil, err
	}
	var found []node
	for _, glob := range mapping.ExpandDottedBraces(query) {
		parts, err := mapping.SplitNodes(glob)
		if err != nil {
			return nil, badRequest("query %q: %v", query, err)
		}
		depth := len(parts)
		// Every path of the query's depth or deeper: a leaf has exactly
		// depth nodes, a branch has a node at index depth.
		ms, err := mapping.NodeMatchers(parts)
		if err != nil {
			return nil, badRequest("query %q: %v", query, err)
		}
		ms = append(ms, labels.MustNewMatcher(labels.MatchNotEqual, mapping.NodeLabel(depth-1), ""))
		// The name of an untagged series is its whole path: the distinct
		// names under the glob (one label-values lookup, not a series per
		// path over the wire) give the matching paths, cut to the query's
		// depth.
		names, _, err := q.LabelValues(ctx, labels.MetricName, nil, ms...)
		if err != nil {
			return nil, storageError(err)
		}
		if err := f.charge(len(names), 0); err != nil {
			return nil, err
		}
		for _, name := range names {
			elems := strings.SplitN(name, ".", depth+1)
			if len(elems) < depth {
				continue // not a path this deep (the matchers rule it out)
			}
			n := node{path: name, name: elems[depth-1], leaf: len(elems) == depth}
			if !n.leaf {
				n.path = name[:len(name)-len(elems[depth])-1]
			}
			found = append(found, n)
		}
	}
	// One node per path; a path that is both a leaf and a branch is a leaf.
	slices.SortFunc(found, func(a, b node) int {
		if c := strings.Compare(a.path, b.path); c != 0 {
			return c
		}
		if a.leaf == b.leaf {
			return 0
		}
		if a.leaf {
			return -1
		}
		return 1
	})
	return slices.CompactFunc(found, func(a, b node) bool { return a.path == b.path }), nil
}

// Find is /graphite/metrics/find.
func (a *API) Find(w http.ResponseWriter, r *http.Request) { a.serve(w, r, a.find) }

func (a *API) find(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	query := r.Form.Get("query")
	if query == "" {
		return badRequest("missing parameter query (a path glob such as servers.*)")
	}
	format := r.Form.Get("format")
	if format == "" {
		format = "treejson"
	}
	if format == "completer" {
		query = strings.ReplaceAll(query, "..", "*.")
		if !strings.HasSuffix(query, "*") {
			query += "*"
		}
	}
	from, until, err := a.findRange(r)
	if err != nil {
		return err
	}
	var nodes []node
	if format == "completer" && globbedPrefix(query) {
		// graphite-web's completer answers real paths (servers.web01.cpu.user
		// for servers.*.cpu.*), one per match, where treejson keeps one node
		// per name under the query's own prefix.
		nodes, err = a.completerPaths(r.Context(), query, from, until)
	} else {
		nodes, err = a.findNodes(r.Context(), query, from, until)
	}
	if err != nil {
		return err
	}
	wildcards := render.Truthy(r.Form.Get("wildcards"))
	switch format {
	case "treejson", "json":
		writeJSON(w, treeJSON(nodes, query, wildcards))
	case "completer":
		writeJSON(w, completerJSON(nodes, wildcards))
	default:
		return badRequest("format=%q is not supported; use treejson or completer", format)
	}
	return nil
}

// findRange reads from/until of find, expand and tag queries. Without them
// the whole retained history is searched.
func (a *API) findRange(r *http.Request) (int64, int64, error) {
	if r.Form.Get("from") == "" && r.Form.Get("until") == "" {
		return math.MinInt64 / 1000, math.MaxInt64 / 1000, nil
	}
	return a.timeRange(r, "-24h")
}

type treeNode struct {
	AllowChildren int    `json:"allowChildren"`
	Expandable    int    `json:"expandable"`
	Leaf          int    `json:"leaf"`
	ID            string `json:"id"`
	Text          string `json:"text"`
}

func treeJSON(nodes []node, query string, wildcards bool) []treeNode {
	base := ""
	if i := strings.LastIndexByte(query, '.'); i >= 0 {
		base = query[:i+1]
	}
	out := []treeNode{}
	if len(nodes) > 1 && wildcards {
		wn := treeNode{Text: "*", ID: base + "*", Leaf: 1}
		for _, n := range nodes {
			if !n.leaf {
				wn = treeNode{Text: "*", ID: base + "*", AllowChildren: 1, Expandable: 1}
				break
			}
		}
		out = append(out, wn)
	}
	var leaves []treeNode
	for _, n := range nodes {
		if n.leaf {
			leaves = append(leaves, treeNode{Text: n.name, ID: base + n.name, Leaf: 1})
		} else {
			out = append(out, treeNode{Text: n.name, ID: base + n.name, AllowChildren: 1, Expandable: 1})
		}
	}
	return append(out, leaves...)
}

type completerNode struct {
	Path   string `json:"path,omitempty"`
	Name   string `json:"name"`
	IsLeaf string `json:"is_leaf,omitempty"`
}

func completerJSON(nodes []node, wildcards bool) map[string][]completerNode {
	out := []completerNode{}
	for _, n := range nodes {
		c := completerNode{Path: n.path, Name: n.name, IsLeaf: "0"}
		if n.leaf {
			c.IsLeaf = "1"
		} else {
			c.Path += "."
		}
		out = append(out, c)
	}
	if len(out) > 1 && wildcards {
		out = append(out, completerNode{Name: "*"})
	}
	return map[string][]completerNode{"metrics": out}
}

// Expand is /graphite/metrics/expand: the full paths every query matches
// (leaves and branches; leaves only with leavesOnly=1), merged and sorted,
// or per query with groupByExpr=1.
func (a *API) Expand(w http.ResponseWriter, r *http.Request) { a.serve(w, r, a.expand) }

func (a *API) expand(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	queries := r.Form["query"]
	if len(queries) == 0 {
		return badRequest("missing parameter query (a path glob such as servers.*)")
	}
	from, until, err := a.findRange(r)
	if err != nil {
		return err
	}
	leavesOnly := render.Truthy(r.Form.Get("leavesOnly"))
	f, err := a.tenantLimits(r.Context())
	if err != nil {
		return err
	}
	grouped := map[string][]string{}
	union := map[string]bool{}
	for _, query := range queries {
		paths, err := a.expandOne(r.Context(), f, query, from, until, leavesOnly)
		if err != nil {
			return err
		}
		grouped[query] = paths
		for _, p := range paths {
			union[p] = true
		}
	}
	if render.Truthy(r.Form.Get("groupByExpr")) {
		writeJSON(w, map[string]any{"results": grouped})
		return nil
	}
	all := make([]string, 0, len(union))
	for p := range union {
		all = append(all, p)
	}
	sort.Strings(all)
	writeJSON(w, map[string]any{"results": all})
	return nil
}

// expandOne lists the paths (cut to the query's node count) of the series
// a glob matches. It reads the labels of the matching series only.
func (a *API) expandOne(ctx context.Context, f *fetcher, query string, from, until int64, leavesOnly bool) ([]string, error) {
	q, err := a.queryable.Querier(from*1000, until*1000)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	defer q.Close()
	set := map[string]bool{}
	for _, glob := range mapping.ExpandDottedBraces(query) {
		nodes, err := mapping.SplitNodes(glob)
		if err != nil {
			return nil, badRequest("query %q: %v", query, err)
		}
		ms, err := mapping.NodeMatchers(nodes)
		if err != nil {
			return nil, badRequest("query %q: %v", query, err)
		}
		count := strconv.Itoa(len(nodes))
		if leavesOnly {
			ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, mapping.NodeCountLabel, count))
		} else {
			ms = append(ms, labels.MustNewMatcher(labels.MatchNotEqual, mapping.NodeLabel(len(nodes)-1), ""))
		}
		ss := q.Select(ctx, false, &storage.SelectHints{Start: from * 1000, End: until * 1000, Func: "series"}, ms...)
		for ss.Next() {
			ls := ss.At().Labels()
			parts := make([]string, len(nodes))
			for i := range nodes {
				parts[i] = ls.Get(mapping.NodeLabel(i))
			}
			p := strings.Join(parts, ".")
			if !set[p] {
				set[p] = true
				if err := f.charge(1, 0); err != nil {
					return nil, err
				}
			}
		}
		if err := ss.Err(); err != nil {
			return nil, storageError(err)
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// Tags is /graphite/tags: [{"tag": name}, ...] of every tag, filtered by
// the regexp filter (matched at the start, as graphite-web).
func (a *API) Tags(w http.ResponseWriter, r *http.Request) { a.serve(w, r, a.tags) }

func (a *API) tags(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	var filter *regexp.Regexp
	if f := r.Form.Get("filter"); f != "" {
		re, err := regexp.Compile("^(?:" + f + ")")
		if err != nil {
			return badRequest("filter %q is not a regular expression: %v", f, err)
		}
		filter = re
	}
	limit, err := limitParam(r, 0)
	if err != nil {
		return err
	}
	from, until, err := a.findRange(r)
	if err != nil {
		return err
	}
	names, err := a.tagNames(r.Context(), nil, from, until)
	if err != nil {
		return err
	}
	out := []map[string]string{}
	for _, n := range names {
		if filter != nil && !filter.MatchString(n) {
			continue
		}
		out = append(out, map[string]string{"tag": n})
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	writeJSON(w, out)
	return nil
}

func limitParam(r *http.Request, def int) (int, error) {
	v := r.Form.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badRequest("limit=%q is not a non-negative integer", v)
	}
	return n, nil
}

// tagNames lists the sorted tag names of the series matching ms (all tags
// of all series when ms is empty: the names of the labels, which the index
// holds; untagged paths only contribute "name").
func (a *API) tagNames(ctx context.Context, ms []*labels.Matcher, from, until int64) ([]string, error) {
	q, err := a.queryable.Querier(from*1000, until*1000)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	defer q.Close()
	names, _, err := q.LabelNames(ctx, nil, ms...)
	if err != nil {
		return nil, storageError(err)
	}
	set := map[string]bool{}
	for _, n := range names {
		if t := mapping.TagName(n); t != "" {
			set[t] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// exprParams reads the repeated expr parameter (also expr[] as jQuery sends).
func exprParams(r *http.Request) []string {
	var out []string
	for _, k := range []string{"expr", "expr[]"} {
		for _, e := range r.Form[k] {
			if strings.TrimSpace(e) != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// AutoCompleteTags is /graphite/tags/autoComplete/tags: tag names starting
// with tagPrefix, of the series matching the expr expressions when given
// (minus the tags those expressions name), as graphite-web.
func (a *API) AutoCompleteTags(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, a.autoCompleteTags)
}

func (a *API) autoCompleteTags(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	limit, err := limitParam(r, defaultAutocompleteLimit)
	if err != nil {
		return err
	}
	from, until, err := a.findRange(r)
	if err != nil {
		return err
	}
	exprs := exprParams(r)
	prefix := r.Form.Get("tagPrefix")
	var ms []*labels.Matcher
	searched := map[string]bool{}
	if len(exprs) > 0 {
		if ms, err = mapping.TagMatchers(exprs); err != nil {
			return badRequest("%v", err)
		}
		for _, e := range exprs {
			if te, err := mapping.ParseTagExpr(e); err == nil {
				searched[te.Tag] = true
			}
		}
	}
	names, err := a.tagNames(r.Context(), ms, from, until)
	if err != nil {
		return err
	}
	out := []string{}
	for _, n := range names {
		if searched[n] || !strings.HasPrefix(n, prefix) {
			continue
		}
		out = append(out, n)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	writeJSON(w, out)
	return nil
}

// AutoCompleteValues is /graphite/tags/autoComplete/values: values of tag
// starting with valuePrefix, among the series matching expr when given.
func (a *API) AutoCompleteValues(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, a.autoCompleteValues)
}

func (a *API) autoCompleteValues(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	tag := r.Form.Get("tag")
	if tag == "" {
		return badRequest("missing parameter tag")
	}
	limit, err := limitParam(r, defaultAutocompleteLimit)
	if err != nil {
		return err
	}
	from, until, err := a.findRange(r)
	if err != nil {
		return err
	}
	var ms []*labels.Matcher
	if exprs := exprParams(r); len(exprs) > 0 {
		if ms, err = mapping.TagMatchers(exprs); err != nil {
			return badRequest("%v", err)
		}
	} else {
		// Tagged series only: untagged paths are not in Graphite's tag index.
		ms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, mapping.NodeCountLabel, "")}
	}
	if p := r.Form.Get("valuePrefix"); p != "" {
		ms = append(ms, labels.MustNewMatcher(labels.MatchRegexp, mapping.LabelName(tag), regexp.QuoteMeta(p)+".*"))
	}
	q, err := a.queryable.Querier(from*1000, until*1000)
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	defer q.Close()
	vals, _, err := q.LabelValues(r.Context(), mapping.LabelName(tag), nil, ms...)
	if err != nil {
		return storageError(err)
	}
	sort.Strings(vals)
	out := []string{}
	for _, v := range vals {
		if v == "" {
			continue
		}
		out = append(out, v)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	writeJSON(w, out)
	return nil
}

// FindSeries is /graphite/tags/findSeries: the names of the tagged series
// matching the expr expressions.
func (a *API) FindSeries(w http.ResponseWriter, r *http.Request) { a.serve(w, r, a.findSeries) }

func (a *API) findSeries(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	ms, err := mapping.TagMatchers(exprParams(r))
	if err != nil {
		return badRequest("%v", err)
	}
	from, until, err := a.findRange(r)
	if err != nil {
		return err
	}
	f, err := a.tenantLimits(r.Context())
	if err != nil {
		return err
	}
	q, err := a.queryable.Querier(from*1000, until*1000)
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	defer q.Close()
	ss := q.Select(r.Context(), false, &storage.SelectHints{Start: from * 1000, End: until * 1000, Func: "series"}, ms...)
	out := []string{}
	for ss.Next() {
		if err := f.charge(1, 0); err != nil {
			return err
		}
		name, _ := mapping.SeriesName(ss.At().Labels())
		out = append(out, name)
	}
	if err := ss.Err(); err != nil {
		return storageError(err)
	}
	sort.Strings(out)
	writeJSON(w, out)
	return nil
}

// Functions is /graphite/functions: the function catalog Grafana's editor
// reads.
func (a *API) Functions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, functions.Catalog())
}

// Version is /graphite/version.
func (a *API) Version(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(Version))
}

// Events is /graphite/events/get_data: Meridian stores no events.
func (a *API) Events(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, []any{})
}
