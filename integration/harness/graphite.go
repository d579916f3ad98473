package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Meridian's Graphite flags and paths, in one place for the compatibility
// test and tools/graphitebench.
const (
	// FlagCarbonTCPListenAddress is carbon's plaintext TCP listener
	// (host:port).
	FlagCarbonTCPListenAddress = "graphite.carbon.tcp-listen-address"
	// FlagCarbonTenant names the tenant whose data arrives on that listener.
	FlagCarbonTenant = "graphite.carbon.tenant"
	// FlagGraphiteStep is the per-tenant default of the Graphite step
	// (limits: graphite_step): points are bucketed into [ts - ts%step) and
	// the last one in a bucket wins, like whisper.
	FlagGraphiteStep = "graphite.step"
	// GraphitePrefix is where Meridian serves the Graphite HTTP API.
	GraphitePrefix = "/graphite"
)

// MeridianGraphiteArgs are the flags that make a Meridian process accept
// carbon plaintext on carbonAddr (host:port) for tenant and answer Graphite
// queries at step.
func MeridianGraphiteArgs(carbonAddr, tenant string, step time.Duration) []string {
	return []string{
		"-" + FlagCarbonTCPListenAddress + "=" + carbonAddr,
		"-" + FlagCarbonTenant + "=" + tenant,
		"-" + FlagGraphiteStep + "=" + step.String(),
	}
}

// GraphiteAPI talks to a Graphite HTTP API: graphite-web at its root, or
// Meridian under GraphitePrefix with a tenant. It does not depend on
// testing; errors are returned.
type GraphiteAPI struct {
	// Base is the URL the API paths (/render, /metrics/find) are appended to.
	Base string
	// Tenant is sent as X-Scope-OrgID when set.
	Tenant string
	HTTP   *http.Client
}

// NewGraphiteAPI returns a client with a 10-minute timeout per request.
func NewGraphiteAPI(base, tenant string) *GraphiteAPI {
	return &GraphiteAPI{Base: strings.TrimRight(base, "/"), Tenant: tenant, HTTP: &http.Client{Timeout: 10 * time.Minute}}
}

// GraphiteSeries is one series of graphite's render JSON. Values are nil
// where graphite answers null.
type GraphiteSeries struct {
	Target     string
	Tags       map[string]any
	Timestamps []int64
	Values     []*float64
}

// UnmarshalJSON reads {"target": ..., "tags": ..., "datapoints": [[v, ts], ...]}.
func (s *GraphiteSeries) UnmarshalJSON(b []byte) error {
	var raw struct {
		Target     string           `json:"target"`
		Tags       map[string]any   `json:"tags"`
		Datapoints [][2]json.Number `json:"datapoints"`
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return err
	}
	s.Target, s.Tags = raw.Target, raw.Tags
	s.Timestamps = make([]int64, len(raw.Datapoints))
	s.Values = make([]*float64, len(raw.Datapoints))
	for i, dp := range raw.Datapoints {
		ts, err := dp[1].Float64()
		if err != nil {
			return fmt.Errorf("datapoint %d: timestamp %q: %w", i, dp[1], err)
		}
		s.Timestamps[i] = int64(ts)
		if dp[0] == "" {
			continue
		}
		v, err := dp[0].Float64()
		if err != nil {
			return fmt.Errorf("datapoint %d: value %q: %w", i, dp[0], err)
		}
		s.Values[i] = &v
	}
	return nil
}

// Get sends GET path?params and returns status and body.
func (a *GraphiteAPI) Get(ctx context.Context, path string, params url.Values) (int, []byte, error) {
	u := a.Base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	if a.Tenant != "" {
		req.Header.Set("X-Scope-OrgID", a.Tenant)
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	return resp.StatusCode, body, err
}

// RenderParams are the query parameters of a JSON render of targets over
// (from, until] (unix seconds), plus extra ones (maxDataPoints, ...).
func RenderParams(targets []string, from, until int64, extra url.Values) url.Values {
	params := url.Values{}
	for k, v := range extra {
		params[k] = v
	}
	params["target"] = targets
	params.Set("from", strconv.FormatInt(from, 10))
	params.Set("until", strconv.FormatInt(until, 10))
	params.Set("format", "json")
	return params
}

// Render renders targets over (from, until] (unix seconds) as JSON; extra
// parameters (maxDataPoints, ...) are added to the request.
func (a *GraphiteAPI) Render(ctx context.Context, targets []string, from, until int64, extra url.Values) ([]GraphiteSeries, error) {
	code, body, err := a.Get(ctx, "/render", RenderParams(targets, from, until, extra))
	if err != nil {
		return nil, err
	}
	return ParseRender(fmt.Sprintf("render %q", targets), code, body)
}

// ParseRender reads a render answer; what names the request in errors.
func ParseRender(what string, code int, body []byte) ([]GraphiteSeries, error) {
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", what, code, truncate(body, 500))
	}
	var out []GraphiteSeries
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("%s: reading the JSON: %w: %s", what, err, truncate(body, 500))
	}
	return out, nil
}

// GraphiteNode is one entry of /metrics/find's default (treejson) format.
type GraphiteNode struct {
	ID            string `json:"id"`
	Text          string `json:"text"`
	Leaf          int    `json:"leaf"`
	Expandable    int    `json:"expandable"`
	AllowChildren int    `json:"allowChildren"`
}

// Find runs /metrics/find?query=query (treejson, graphite's default).
func (a *GraphiteAPI) Find(ctx context.Context, query string) ([]GraphiteNode, error) {
	code, body, err := a.Get(ctx, "/metrics/find", url.Values{"query": {query}})
	if err != nil {
		return nil, err
	}
	return ParseFind(fmt.Sprintf("find %q", query), code, body)
}

// ParseFind reads a /metrics/find answer; what names the request in errors.
func ParseFind(what string, code int, body []byte) ([]GraphiteNode, error) {
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", what, code, truncate(body, 500))
	}
	var out []GraphiteNode
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("%s: reading the JSON: %w: %s", what, err, truncate(body, 500))
	}
	return out, nil
}

// GraphiteCompleterNode is one entry of /metrics/find?format=completer:
// branches have a path ending in "." and is_leaf "0".
type GraphiteCompleterNode struct {
	Path   string `json:"path"`
	Name   string `json:"name"`
	IsLeaf string `json:"is_leaf"`
}

// FindCompleterParams are the parameters of a completer-format find.
func FindCompleterParams(query string) url.Values {
	return url.Values{"query": {query}, "format": {"completer"}}
}

// FindCompleter runs /metrics/find?query=query&format=completer. Unlike
// the default format, it lists every match (the default keeps one node per
// name: tree.0.5 and tree.1.5 both show as "5").
func (a *GraphiteAPI) FindCompleter(ctx context.Context, query string) ([]GraphiteCompleterNode, error) {
	code, body, err := a.Get(ctx, "/metrics/find", FindCompleterParams(query))
	if err != nil {
		return nil, err
	}
	return ParseFindCompleter(fmt.Sprintf("find %q (completer)", query), code, body)
}

// ParseFindCompleter reads a completer-format find answer.
func ParseFindCompleter(what string, code int, body []byte) ([]GraphiteCompleterNode, error) {
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", what, code, truncate(body, 500))
	}
	var out struct {
		Metrics []GraphiteCompleterNode `json:"metrics"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("%s: reading the JSON: %w: %s", what, err, truncate(body, 500))
	}
	return out.Metrics, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// CarbonPoint is one carbon plaintext line: "path value timestamp".
type CarbonPoint struct {
	Path  string
	Value float64
	TS    int64
}

// Line formats p in carbon's plaintext protocol, newline included.
func (p CarbonPoint) Line() string {
	return p.Path + " " + strconv.FormatFloat(p.Value, 'g', -1, 64) + " " + strconv.FormatInt(p.TS, 10) + "\n"
}

// SendCarbon writes points as carbon plaintext lines over one TCP
// connection to addr and closes it.
func SendCarbon(addr string, points []CarbonPoint) error {
	return SendCarbonFunc(addr, func(w *bufio.Writer) error {
		for _, p := range points {
			if _, err := w.WriteString(p.Line()); err != nil {
				return err
			}
		}
		return nil
	})
}

// SendCarbonFunc opens one TCP connection to addr, lets write fill it
// through a buffer, then flushes and closes it (write deadline 10 minutes).
func SendCarbonFunc(addr string, write func(w *bufio.Writer) error) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("connecting to carbon at %s: %w", addr, err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Minute))
	w := bufio.NewWriterSize(conn, 1<<16)
	if err := write(w); err != nil {
		return fmt.Errorf("sending to carbon at %s: %w", addr, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("sending to carbon at %s: %w", addr, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	return nil
}

// ProcessGroupRSS sums the resident set size (bytes, VmRSS in
// /proc/PID/status) of every process in process group pgid.
func ProcessGroupRSS(pgid int) (int64, error) {
	var total int64
	err := forEachInGroup(pgid, func(pid int, _ []string) {
		if rss, err := ProcessRSS(pid); err == nil {
			total += rss
		}
	})
	return total, err
}

// ProcessGroupCPU sums the CPU time (user and system) used so far by every
// process in process group pgid.
func ProcessGroupCPU(pgid int) (time.Duration, error) {
	var total time.Duration
	err := forEachInGroup(pgid, func(_ int, stat []string) { total += statCPU(stat) })
	return total, err
}

// ProcessCPU returns the CPU time (user and system) one process used so far.
func ProcessCPU(pid int) (time.Duration, error) {
	stat, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	return statCPU(stat), nil
}

// procStat returns the fields of /proc/PID/stat after the command name
// (which may contain spaces): state ppid pgrp ...
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// statCPU is utime + stime of procStat's fields, in clock ticks of 10 ms
// (USER_HZ is 100 on Linux).
func statCPU(f []string) time.Duration {
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// forEachInGroup calls f with each process of process group pgid and its
// procStat fields; it fails when there is none.
func forEachInGroup(pgid int, f func(pid int, stat []string)) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	found := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := procStat(pid)
		if err != nil || len(stat) < 3 || stat[2] != strconv.Itoa(pgid) {
			continue
		}
		f(pid, stat)
		found = true
	}
	if !found {
		return fmt.Errorf("no process in process group %d", pgid)
	}
	return nil
}

// ProcessRSS returns one process' resident set size in bytes.
func ProcessRSS(pid int) (int64, error) {
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) < 2 {
				break
			}
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// LoopbackHost returns a 127.0.0.x address of its own for a process this
// test binary starts (the same choice StartMeridian makes when
// Options.Host is empty), for callers that need the host before the start.
func LoopbackHost() string { return nextHost() }

// RequireMeridianFlags fails the test unless the meridian binary under test
// knows every flag in names (e.g. FlagCarbonTenant): a clearer message than
// a process that exits on an unknown flag.
func RequireMeridianFlags(tb testing.TB, names ...string) {
	tb.Helper()
	known := knownFlags(BuildBinary(tb))
	var missing []string
	for _, n := range names {
		if !known[n] {
			missing = append(missing, "-"+n)
		}
	}
	if len(missing) > 0 {
		tb.Fatalf("the meridian binary has no %s flag (see integration/harness/graphite.go for the names this test uses)", strings.Join(missing, ", "))
	}
}
