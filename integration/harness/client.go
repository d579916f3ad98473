package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
)

// Client sends requests to one process as one tenant. Transport errors fail
// the test; HTTP errors are returned for the test to judge.
type Client struct {
	tb        testing.TB
	base      string // e.g. http://127.0.0.5:8080
	apiPrefix string // where the Prometheus HTTP API lives
	http      *http.Client
	tenant    string // X-Scope-OrgID; none when empty
	user      string // basic-auth user; none when empty
	password  string
	post      bool // API calls as POST with a form body instead of GET
}

// Client returns a client that sends X-Scope-OrgID: tenant (no header when
// tenant is empty).
func (p *Process) Client(tenant string) *Client {
	return &Client{tb: p.tb, base: p.URL(), apiPrefix: APIPrefix, http: p.http, tenant: tenant}
}

// NewClient returns a client for any server with the Prometheus HTTP API
// under apiPrefix (e.g. a reference Prometheus: baseURL
// "http://127.0.0.1:9090", apiPrefix "/api/v1"), without tenant headers.
func NewClient(tb testing.TB, baseURL, apiPrefix string) *Client {
	return &Client{tb: tb, base: baseURL, apiPrefix: apiPrefix, http: &http.Client{Timeout: 2 * time.Minute}}
}

// BasicAuthClient returns a client that authenticates with basic auth and no
// X-Scope-OrgID header.
func (p *Process) BasicAuthClient(user, password string) *Client {
	return &Client{tb: p.tb, base: p.URL(), apiPrefix: APIPrefix, http: p.http, user: user, password: password}
}

// WithPOST returns a copy of c that sends Prometheus API calls as POST with
// an application/x-www-form-urlencoded body.
func (c *Client) WithPOST() *Client {
	cp := *c
	cp.post = true
	return &cp
}

func (c *Client) authorize(req *http.Request) {
	if c.tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.tenant)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
}

// Do sends req with the client's credentials and returns status and body
// (transport errors are returned, not fatal).
func (c *Client) Do(req *http.Request) (int, []byte, error) {
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return resp.StatusCode, body, fmt.Errorf("reading the response to %s %s: %w", req.Method, req.URL, err)
	}
	return resp.StatusCode, body, nil
}

func (c *Client) do(method, path string, body []byte, contentType string, hdr http.Header) (int, []byte) {
	c.tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.tb.Fatalf("building %s %s: %v", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	code, respBody, err := c.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	return code, respBody
}

// Push sends series as one remote-write 1.0 request and returns the HTTP
// status and body.
func (c *Client) Push(series ...prompb.TimeSeries) (int, string) {
	c.tb.Helper()
	return c.PushRequest(&prompb.WriteRequest{Timeseries: series})
}

// PushRequest sends a whole WriteRequest (series and metadata).
func (c *Client) PushRequest(wr *prompb.WriteRequest) (int, string) {
	c.tb.Helper()
	code, body, err := c.TryPushRequest(wr)
	if err != nil {
		c.tb.Fatalf("push: %v", err)
	}
	return code, body
}

// TryPushRequest is PushRequest that returns transport errors instead of
// failing the test; safe to call from any goroutine.
func (c *Client) TryPushRequest(wr *prompb.WriteRequest) (int, string, error) {
	raw, err := wr.Marshal()
	if err != nil {
		return 0, "", fmt.Errorf("encoding the write request: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, c.base+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return 0, "", err
	}
	SetRemoteWriteHeaders(req.Header)
	code, body, err := c.Do(req)
	return code, string(body), err
}

// SetRemoteWriteHeaders sets the headers of a remote-write 1.0 request.
func SetRemoteWriteHeaders(h http.Header) {
	h.Set("Content-Type", "application/x-protobuf")
	h.Set("Content-Encoding", "snappy")
	h.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	h.Set("User-Agent", "meridian-integration-test")
}

// PushRaw posts body to /api/v1/push as is, with the given headers (nil:
// the remote-write 1.0 headers).
func (c *Client) PushRaw(body []byte, hdr http.Header) (int, string) {
	c.tb.Helper()
	if hdr == nil {
		hdr = http.Header{}
		SetRemoteWriteHeaders(hdr)
	}
	code, b := c.do(http.MethodPost, "/api/v1/push", body, "", hdr)
	return code, string(b)
}

// Response is a Prometheus HTTP API answer.
type Response struct {
	StatusCode int             `json:"-"`
	Body       []byte          `json:"-"`
	Status     string          `json:"status"`
	Data       json.RawMessage `json:"data"`
	ErrorType  string          `json:"errorType"`
	Error      string          `json:"error"`
	Warnings   []string        `json:"warnings"`
	Infos      []string        `json:"infos"`
}

// String summarizes the response for failure messages.
func (r *Response) String() string {
	body := string(r.Body)
	if len(body) > 2000 {
		body = body[:2000] + "...(truncated)"
	}
	return fmt.Sprintf("HTTP %d: %s", r.StatusCode, body)
}

// API calls an endpoint by its full path, e.g. "/prometheus/api/v1/query",
// with GET (params in the URL) or, after WithPOST, POST (params as a form).
// A body that is not the API's JSON envelope leaves Status empty.
func (c *Client) API(path string, params url.Values) *Response {
	c.tb.Helper()
	return c.api(c.post, path, params)
}

// GetAPI is API with GET whatever WithPOST said: Prometheus serves
// label values, metadata and status endpoints with GET only.
func (c *Client) GetAPI(path string, params url.Values) *Response {
	c.tb.Helper()
	return c.api(false, path, params)
}

func (c *Client) api(post bool, path string, params url.Values) *Response {
	c.tb.Helper()
	var code int
	var body []byte
	if post {
		code, body = c.do(http.MethodPost, path, []byte(params.Encode()), "application/x-www-form-urlencoded", nil)
	} else {
		u := path
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
		code, body = c.do(http.MethodGet, u, nil, "", nil)
	}
	r := &Response{StatusCode: code, Body: body}
	_ = json.Unmarshal(body, r)
	return r
}

// APIPrefix is where Meridian serves the Prometheus HTTP API.
const APIPrefix = "/prometheus/api/v1"

// FormatTime formats t as the API's float seconds.
func FormatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}

func addRange(v url.Values, start, end time.Time) {
	if !start.IsZero() {
		v.Set("start", FormatTime(start))
	}
	if !end.IsZero() {
		v.Set("end", FormatTime(end))
	}
}

// Query runs an instant query at ts (server's now when ts is zero).
func (c *Client) Query(query string, ts time.Time) *Response {
	c.tb.Helper()
	v := url.Values{"query": {query}}
	if !ts.IsZero() {
		v.Set("time", FormatTime(ts))
	}
	return c.API(c.apiPrefix+"/query", v)
}

// QueryRange runs a range query.
func (c *Client) QueryRange(query string, start, end time.Time, step time.Duration) *Response {
	c.tb.Helper()
	v := url.Values{"query": {query}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	addRange(v, start, end)
	return c.API(c.apiPrefix+"/query_range", v)
}

// Series lists the series matching any of matchers.
func (c *Client) Series(matchers []string, start, end time.Time) *Response {
	c.tb.Helper()
	v := url.Values{"match[]": matchers}
	addRange(v, start, end)
	return c.API(c.apiPrefix+"/series", v)
}

// Labels lists label names, optionally restricted by matchers.
func (c *Client) Labels(matchers []string, start, end time.Time) *Response {
	c.tb.Helper()
	v := url.Values{}
	if len(matchers) > 0 {
		v["match[]"] = matchers
	}
	addRange(v, start, end)
	return c.API(c.apiPrefix+"/labels", v)
}

// LabelValues lists the values of label name (always GET, as in Prometheus).
func (c *Client) LabelValues(name string, matchers []string, start, end time.Time) *Response {
	c.tb.Helper()
	v := url.Values{}
	if len(matchers) > 0 {
		v["match[]"] = matchers
	}
	addRange(v, start, end)
	return c.GetAPI(c.apiPrefix+"/label/"+url.PathEscape(name)+"/values", v)
}

// Metadata returns metric metadata, for one metric when metric is not empty
// (always GET, as in Prometheus).
func (c *Client) Metadata(metric string) *Response {
	c.tb.Helper()
	v := url.Values{}
	if metric != "" {
		v.Set("metric", metric)
	}
	return c.GetAPI(c.apiPrefix+"/metadata", v)
}

// Process-level shortcuts that act as the given tenant.

// Push sends series as tenant; see Client.Push.
func (p *Process) Push(tenant string, series ...prompb.TimeSeries) (int, string) {
	p.tb.Helper()
	return p.Client(tenant).Push(series...)
}

// Query runs an instant query as tenant.
func (p *Process) Query(tenant, query string, ts time.Time) *Response {
	p.tb.Helper()
	return p.Client(tenant).Query(query, ts)
}

// QueryRange runs a range query as tenant.
func (p *Process) QueryRange(tenant, query string, start, end time.Time, step time.Duration) *Response {
	p.tb.Helper()
	return p.Client(tenant).QueryRange(query, start, end, step)
}

// Series lists series as tenant.
func (p *Process) Series(tenant string, matchers []string, start, end time.Time) *Response {
	p.tb.Helper()
	return p.Client(tenant).Series(matchers, start, end)
}

// Labels lists label names as tenant.
func (p *Process) Labels(tenant string, matchers []string, start, end time.Time) *Response {
	p.tb.Helper()
	return p.Client(tenant).Labels(matchers, start, end)
}

// LabelValues lists label values as tenant.
func (p *Process) LabelValues(tenant, name string, matchers []string, start, end time.Time) *Response {
	p.tb.Helper()
	return p.Client(tenant).LabelValues(name, matchers, start, end)
}

// Metadata returns metric metadata as tenant.
func (p *Process) Metadata(tenant, metric string) *Response {
	p.tb.Helper()
	return p.Client(tenant).Metadata(metric)
}

// Decoding helpers. Each fails the test when the response is not a success
// of the expected shape.

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// RequireSuccess fails the test unless the response is HTTP 200 with
// status "success".
func (r *Response) RequireSuccess(tb testing.TB) {
	tb.Helper()
	if r.StatusCode != http.StatusOK || r.Status != "success" {
		tb.Fatalf("expected a successful API response, got %s", r)
	}
}

func (r *Response) result(tb testing.TB, want string) json.RawMessage {
	tb.Helper()
	r.RequireSuccess(tb)
	var d queryData
	if err := json.Unmarshal(r.Data, &d); err != nil {
		tb.Fatalf("decoding query data: %v; %s", err, r)
	}
	if d.ResultType != want {
		tb.Fatalf("expected resultType %q, got %q; %s", want, d.ResultType, r)
	}
	return d.Result
}

// Vector decodes an instant-query vector result.
func (r *Response) Vector(tb testing.TB) model.Vector {
	tb.Helper()
	var v model.Vector
	if err := json.Unmarshal(r.result(tb, "vector"), &v); err != nil {
		tb.Fatalf("decoding a vector: %v; %s", err, r)
	}
	return v
}

// Scalar decodes a scalar result.
func (r *Response) Scalar(tb testing.TB) model.Scalar {
	tb.Helper()
	var s model.Scalar
	if err := json.Unmarshal(r.result(tb, "scalar"), &s); err != nil {
		tb.Fatalf("decoding a scalar: %v; %s", err, r)
	}
	return s
}

// Matrix decodes a range-query matrix result.
func (r *Response) Matrix(tb testing.TB) model.Matrix {
	tb.Helper()
	var m model.Matrix
	if err := json.Unmarshal(r.result(tb, "matrix"), &m); err != nil {
		tb.Fatalf("decoding a matrix: %v; %s", err, r)
	}
	return m
}

// Strings decodes a list of strings (labels, label values).
func (r *Response) Strings(tb testing.TB) []string {
	tb.Helper()
	r.RequireSuccess(tb)
	var s []string
	if err := json.Unmarshal(r.Data, &s); err != nil {
		tb.Fatalf("decoding a string list: %v; %s", err, r)
	}
	return s
}

// LabelSets decodes a /series answer.
func (r *Response) LabelSets(tb testing.TB) []model.LabelSet {
	tb.Helper()
	r.RequireSuccess(tb)
	var s []model.LabelSet
	if err := json.Unmarshal(r.Data, &s); err != nil {
		tb.Fatalf("decoding a series list: %v; %s", err, r)
	}
	return s
}

// MetadataEntry is one metadata record of /metadata.
type MetadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// MetadataMap decodes a /metadata answer.
func (r *Response) MetadataMap(tb testing.TB) map[string][]MetadataEntry {
	tb.Helper()
	r.RequireSuccess(tb)
	var m map[string][]MetadataEntry
	if err := json.Unmarshal(r.Data, &m); err != nil {
		tb.Fatalf("decoding metadata: %v; %s", err, r)
	}
	return m
}

// Building remote-write series.

// Labels returns prompb labels from name/value pairs, sorted by name.
func Labels(pairs ...string) []prompb.Label {
	if len(pairs)%2 != 0 {
		panic("harness.Labels needs name/value pairs")
	}
	ls := make([]prompb.Label, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		ls = append(ls, prompb.Label{Name: pairs[i], Value: pairs[i+1]})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	return ls
}

// Sample returns a prompb sample at t.
func Sample(t time.Time, v float64) prompb.Sample {
	return prompb.Sample{Timestamp: t.UnixMilli(), Value: v}
}

// Series returns a time series with the given labels (name/value pairs) and
// samples.
func Series(labelPairs []string, samples ...prompb.Sample) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: Labels(labelPairs...), Samples: samples}
}

// SameFloat reports whether a and b are equal within the relative tolerance
// rel (absolute below 1e-300); two NaNs are equal, as are equal infinities.
func SameFloat(a, b, rel float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if a == b {
		return true
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) {
		return false
	}
	diff := math.Abs(a - b)
	scale := math.Max(math.Abs(a), math.Abs(b))
	return diff <= rel*scale || diff < 1e-300
}
