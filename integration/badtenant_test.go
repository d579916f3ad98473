package integration

import (
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// TestBadTenantIDs: a tenant ID that is too long, has '/', is '.' or '..',
// or has a control character is refused on the write, query and Graphite
// paths with 400 or 401 and a message naming the rule it breaks, whether it
// comes as X-Scope-OrgID or as the basic-auth user; and nothing is created
// on disk for it. (TestBadInput covers "../x" on remote write.)
func TestBadTenantIDs(t *testing.T) {
	t.Parallel()
	p := harness.StartMeridian(t, harness.Options{})
	now := time.Now()
	mustPush(t, p.Client("good"), harness.Series([]string{"__name__", "kept", "job", "j"}, harness.Sample(now, 1)))
	require.Len(t, p.Client("good").Query("kept", now).Vector(t), 1)
	before := tree(t, p.Dir())

	cases := []struct {
		name, id string
		rule     string // the message names the rule with this
		header   bool   // sendable as a header (net/http refuses control characters there)
	}{
		{name: "too long", id: "toolong" + strings.Repeat("x", 200), rule: "maximum of 150", header: true},
		{name: "slash", id: "evil/tenant", rule: "contains '/'", header: true},
		{name: "dot dot slash", id: "../escaped-tenant", rule: "contains '/'", header: true},
		{name: "dot dot", id: "..", rule: "'.' or '..'", header: true},
		{name: "dot", id: ".", rule: "'.' or '..'", header: true},
		{name: "control character", id: "ctl\x01tenant", rule: "unsupported character"},
		{name: "tab", id: "ctl\ttenant", rule: "unsupported character", header: true},
		{name: "newline", id: "ctl\ntenant", rule: "unsupported character"},
		{name: "reserved rules", id: "rules", rule: `"rules" is reserved`, header: true},
		{name: "reserved alerts", id: "alerts", rule: `"alerts" is reserved`, header: true},
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	requests := []struct {
		name        string
		method      string
		path        string
		body        string
		contentType string
	}{
		{name: "remote write", method: http.MethodPost, path: "/api/v1/push", body: "x", contentType: "application/x-protobuf"},
		{name: "query", method: http.MethodGet, path: harness.APIPrefix + "/query?" + url.Values{"query": {"kept"}}.Encode()},
		{name: "query range", method: http.MethodPost, path: harness.APIPrefix + "/query_range", body: url.Values{"query": {"kept"}, "start": {ts}, "end": {ts}, "step": {"15"}}.Encode(), contentType: "application/x-www-form-urlencoded"},
		{name: "series", method: http.MethodGet, path: harness.APIPrefix + "/series?" + url.Values{"match[]": {"kept"}}.Encode()},
		{name: "graphite ingest", method: http.MethodPost, path: harness.GraphitePrefix + "/ingest", body: "bad.tenant.metric 1 " + ts + "\n", contentType: "text/plain"},
		{name: "graphite render", method: http.MethodGet, path: harness.GraphitePrefix + "/render?" + url.Values{"target": {"bad.tenant.metric"}, "format": {"json"}}.Encode()},
		{name: "graphite find", method: http.MethodGet, path: harness.GraphitePrefix + "/metrics/find?" + url.Values{"query": {"*"}}.Encode()},
	}
	for _, tc := range cases {
		clients := map[string]*harness.Client{"basic auth": p.BasicAuthClient(tc.id, "")}
		if tc.header {
			clients["X-Scope-OrgID"] = p.Client(tc.id)
		}
		for how, c := range clients {
			for _, r := range requests {
				req, err := http.NewRequest(r.method, p.URL()+r.path, strings.NewReader(r.body))
				require.NoError(t, err)
				if r.contentType != "" {
					req.Header.Set("Content-Type", r.contentType)
				}
				code, body, err := c.Do(req)
				require.NoError(t, err, "%s, %s, %s", tc.name, how, r.name)
				require.Containsf(t, []int{http.StatusBadRequest, http.StatusUnauthorized}, code, "%s, %s, %s: HTTP %d: %s", tc.name, how, r.name, code, body)
				require.Containsf(t, string(body), tc.rule, "%s, %s, %s: the message names the rule", tc.name, how, r.name)
			}
		}
	}

	after := tree(t, p.Dir())
	var created []string
	for _, path := range after {
		if !slices.Contains(before, path) {
			created = append(created, path)
		}
	}
	require.Empty(t, created, "nothing created on disk for a refused tenant")
	for _, path := range after {
		for _, bad := range []string{"toolong", "evil", "escaped-tenant", "ctl"} {
			require.NotContains(t, path, bad)
		}
	}
	_, err := os.Stat(filepath.Join(filepath.Dir(p.Dir()), "escaped-tenant"))
	require.True(t, os.IsNotExist(err), "nothing created beside the process' directory")
	require.True(t, p.Running())
	require.Len(t, p.Client("good").Query("kept", now).Vector(t), 1)
}

// tree lists the directories under root and the files outside the WAL
// (whose segments and the log grow without new names), relative to root.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		out = append(out, rel)
		return nil
	}))
	return out
}
