package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

const (
	manyTenants       = 2000
	manyTenantWorkers = 8
	manyTenantSample  = 100 // tenants checked on every endpoint
	manyTenantSeries  = 3   // Prometheus series, and Graphite paths, per tenant
)

// manyTenant is tenant i of TestManyTenants: its Prometheus series
// mt_<i>{job="job_<i>", s="0".."2"} with a sample per 30 s, and its Graphite
// paths gt<i>.node.leaf0..2 with one point; every name and value carries i,
// so a series seen by the wrong tenant is visible.
type manyTenant struct {
	i  int
	t0 time.Time
}

func (m manyTenant) id() string     { return fmt.Sprintf("mt-%04d", m.i) }
func (m manyTenant) metric() string { return fmt.Sprintf("mt_%d", m.i) }
func (m manyTenant) job() string    { return fmt.Sprintf("job_%d", m.i) }
func (m manyTenant) path(k int) string {
	return fmt.Sprintf("gt%d.node.leaf%d", m.i, k)
}
func (m manyTenant) times() []time.Time {
	return []time.Time{m.t0.Add(-60 * time.Second), m.t0.Add(-30 * time.Second), m.t0}
}
func (m manyTenant) value(s, k int) float64 { return float64(m.i*1000 + s*10 + k) }
func (m manyTenant) graphiteValue(k int) float64 {
	return float64(m.i*1000+k) + 0.5
}

func (m manyTenant) writeRequest() *prompb.WriteRequest {
	wr := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{
		Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: m.metric(), Help: "Tenant " + m.id() + "'s gauge.",
	}}}
	for s := range manyTenantSeries {
		var samples []prompb.Sample
		for k, ts := range m.times() {
			samples = append(samples, harness.Sample(ts, m.value(s, k)))
		}
		wr.Timeseries = append(wr.Timeseries, harness.Series([]string{"__name__", m.metric(), "job", m.job(), "s", strconv.Itoa(s)}, samples...))
	}
	return wr
}

func (m manyTenant) carbonLines() string {
	var b strings.Builder
	for k := range manyTenantSeries {
		fmt.Fprintf(&b, "%s %g %d\n", m.path(k), m.graphiteValue(k), m.t0.Unix())
	}
	return b.String()
}

// want is every sample of the tenant: series key (name and s, or path) →
// timestamp (ms) → value.
func (m manyTenant) want() map[string]map[int64]float64 {
	out := map[string]map[int64]float64{}
	for s := range manyTenantSeries {
		key := m.metric() + "/" + strconv.Itoa(s)
		out[key] = map[int64]float64{}
		for k, ts := range m.times() {
			out[key][ts.UnixMilli()] = m.value(s, k)
		}
		out[m.path(s)] = map[int64]float64{m.t0.UnixMilli(): m.graphiteValue(s)}
	}
	return out
}

// TestManyTenants: 2 000 tenants write (remote write and Graphite HTTP
// ingest, sent concurrently by a few workers) and read on one monolith.
// Every tenant reads back exactly its own samples; a fixed sample of 100
// tenants sees exactly its own series on every endpoint (query,
// query_range, series, labels, label values, metadata, Graphite render and
// find). After kill -9 and a restart on the same data directory every
// acknowledged sample of every tenant is there.
func TestManyTenants(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{ReadyTimeout: 3 * time.Minute})
	t0 := time.Now().Add(-time.Minute).Truncate(time.Minute)
	tenants := make([]manyTenant, manyTenants)
	for i := range tenants {
		tenants[i] = manyTenant{i: i, t0: t0}
	}

	start := time.Now()
	err := forEachTenant(tenants, func(m manyTenant) error {
		c := p.Client(m.id())
		code, body, err := c.TryPushRequest(m.writeRequest())
		if err != nil || code/100 != 2 {
			return fmt.Errorf("tenant %s: remote write: HTTP %d: %s: %v", m.id(), code, body, err)
		}
		req, err := http.NewRequest(http.MethodPost, p.URL()+harness.GraphitePrefix+"/ingest", strings.NewReader(m.carbonLines()))
		if err != nil {
			return err
		}
		code, resp, err := c.Do(req)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("tenant %s: graphite ingest: HTTP %d: %s: %v", m.id(), code, resp, err)
		}
		return nil
	})
	require.NoError(t, err)
	t.Logf("%d tenants written in %s", manyTenants, time.Since(start))

	checkAll := func(when string) {
		t.Helper()
		start := time.Now()
		require.NoError(t, forEachTenant(tenants, func(m manyTenant) error {
			return checkTenantSamples(p.URL(), m)
		}), when)
		t.Logf("%s: every sample of %d tenants read back in %s", when, manyTenants, time.Since(start))
	}
	checkAll("before the crash")

	rng := rand.New(rand.NewSource(14))
	for _, i := range rng.Perm(manyTenants)[:manyTenantSample] {
		checkTenantEndpoints(t, p, tenants[i])
	}

	p.Kill()
	start = time.Now()
	p.Start()
	t.Logf("restart with %d tenant WALs ready in %s", manyTenants, time.Since(start))
	checkAll("after kill -9 and restart")
}

// forEachTenant runs f for every tenant on manyTenantWorkers goroutines
// and returns the first error; it stops handing out tenants after one.
func forEachTenant(tenants []manyTenant, f func(manyTenant) error) error {
	work := make(chan manyTenant)
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return first != nil }
	for range manyTenantWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				if err := f(m); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, m := range tenants {
		if failed() {
			break
		}
		work <- m
	}
	close(work)
	wg.Wait()
	return first
}

// checkTenantSamples reads every raw sample the tenant can see over the
// last 5 minutes and compares them with what it wrote.
func checkTenantSamples(base string, m manyTenant) error {
	var result model.Matrix
	if err := instantQuery(base, m.id(), `{__name__=~".+"}[5m]`, m.t0, &result); err != nil {
		return err
	}
	got := map[string]map[int64]float64{}
	for _, s := range result {
		key := string(s.Metric[model.MetricNameLabel])
		if sv, ok := s.Metric["s"]; ok {
			key += "/" + string(sv)
		}
		if got[key] != nil {
			return fmt.Errorf("tenant %s: series %s returned twice", m.id(), key)
		}
		got[key] = map[int64]float64{}
		for _, sp := range s.Values {
			got[key][int64(sp.Timestamp)] = float64(sp.Value)
		}
	}
	want := m.want()
	if !mapsEqual(got, want) {
		return fmt.Errorf("tenant %s sees\n%v\nwant\n%v", m.id(), got, want)
	}
	return nil
}

// instantQuery runs an instant query as tenant and decodes its result into
// result; it returns errors instead of failing the test, for goroutines.
func instantQuery(base, tenant, query string, ts time.Time, result any) error {
	params := url.Values{"query": {query}, "time": {harness.FormatTime(ts)}}
	req, err := http.NewRequest(http.MethodGet, base+harness.APIPrefix+"/query?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := queryHTTP.Do(req)
	if err != nil {
		return fmt.Errorf("tenant %s: query %s: %w", tenant, query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("tenant %s: query %s: %w", tenant, query, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("tenant %s: query %s: HTTP %d: %s", tenant, query, resp.StatusCode, body)
	}
	var r struct {
		Data struct {
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("tenant %s: query %s: %w: %s", tenant, query, err, body)
	}
	if err := json.Unmarshal(r.Data.Result, result); err != nil {
		return fmt.Errorf("tenant %s: query %s: %w: %s", tenant, query, err, body)
	}
	return nil
}

var queryHTTP = &http.Client{Timeout: time.Minute}

func mapsEqual(a, b map[string]map[int64]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok || len(av) != len(bv) {
			return false
		}
		for ts, v := range av {
			if w, ok := bv[ts]; !ok || w != v {
				return false
			}
		}
	}
	return true
}

// checkTenantEndpoints checks that the tenant sees exactly its own series
// on every read endpoint.
func checkTenantEndpoints(t *testing.T, p *harness.Process, m manyTenant) {
	t.Helper()
	c := p.Client(m.id())
	times := m.times()
	from, until := times[0], times[len(times)-1]
	var paths, names []string
	for k := range manyTenantSeries {
		paths = append(paths, m.path(k))
	}
	names = append(slices.Clone(paths), m.metric())
	slices.Sort(names)

	v := c.Query(m.metric(), until).Vector(t)
	require.Len(t, v, manyTenantSeries, "tenant %s: query", m.id())
	for _, s := range v {
		si, err := strconv.Atoi(string(s.Metric["s"]))
		require.NoError(t, err)
		require.Equal(t, m.value(si, len(times)-1), float64(s.Value), "tenant %s: query %v", m.id(), s.Metric)
	}
	mx := c.QueryRange(`{__name__=~".+", job!=""}`, from, until, 30*time.Second).Matrix(t)
	require.Len(t, mx, manyTenantSeries, "tenant %s: query_range", m.id())
	for _, s := range mx {
		si, err := strconv.Atoi(string(s.Metric["s"]))
		require.NoError(t, err)
		require.Equal(t, m.metric(), string(s.Metric[model.MetricNameLabel]))
		require.Len(t, s.Values, len(times), "tenant %s: query_range %v", m.id(), s.Metric)
		for k, sp := range s.Values {
			require.Equal(t, m.value(si, k), float64(sp.Value), "tenant %s: query_range %v", m.id(), s.Metric)
		}
	}
	var seriesNames []string
	for _, ls := range c.Series([]string{`{__name__=~".+"}`}, from, until).LabelSets(t) {
		seriesNames = append(seriesNames, string(ls[model.MetricNameLabel]))
	}
	slices.Sort(seriesNames)
	wantSeries := append(slices.Clone(paths), m.metric(), m.metric(), m.metric())
	slices.Sort(wantSeries)
	require.Equal(t, wantSeries, seriesNames, "tenant %s: series", m.id())
	require.Equal(t, []string{"__g0__", "__g1__", "__g2__", "__gn__", "__name__", "job", "s"}, c.Labels(nil, from, until).Strings(t), "tenant %s: labels", m.id())
	require.Equal(t, names, c.LabelValues("__name__", nil, from, until).Strings(t), "tenant %s: label values of __name__", m.id())
	require.Equal(t, []string{m.job()}, c.LabelValues("job", nil, from, until).Strings(t), "tenant %s: label values of job", m.id())
	md := c.Metadata("").MetadataMap(t)
	require.Len(t, md, 1, "tenant %s: metadata %v", m.id(), md)
	require.Contains(t, md, m.metric(), "tenant %s: metadata", m.id())

	g := harness.NewGraphiteAPI(p.URL()+harness.GraphitePrefix, m.id())
	ctx := context.Background()
	nodes, err := g.Find(ctx, "*")
	require.NoError(t, err)
	require.Len(t, nodes, 1, "tenant %s: find * = %v", m.id(), nodes)
	require.Equal(t, fmt.Sprintf("gt%d", m.i), nodes[0].ID, "tenant %s: find *", m.id())
	nodes, err = g.Find(ctx, fmt.Sprintf("gt%d.node.*", m.i))
	require.NoError(t, err)
	var leaves []string
	for _, n := range nodes {
		require.Equal(t, 1, n.Leaf)
		leaves = append(leaves, n.ID)
	}
	slices.Sort(leaves)
	require.Equal(t, paths, leaves, "tenant %s: find of its leaves", m.id())
	series, err := g.Render(ctx, []string{"*.node.*"}, m.t0.Add(-5*time.Minute).Unix(), m.t0.Add(time.Minute).Unix(), nil)
	require.NoError(t, err)
	require.Len(t, series, manyTenantSeries, "tenant %s: render", m.id())
	for _, s := range series {
		k := slices.Index(paths, s.Target)
		require.GreaterOrEqual(t, k, 0, "tenant %s: render target %s", m.id(), s.Target)
		var vals []float64
		for _, v := range s.Values {
			if v != nil {
				vals = append(vals, *v)
			}
		}
		require.Equal(t, []float64{m.graphiteValue(k)}, vals, "tenant %s: render %s", m.id(), s.Target)
	}
}
