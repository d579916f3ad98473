package mapping

import (
	"regexp"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

func TestPathLabels(t *testing.T) {
	ls := PathLabels("servers.web01.cpu")
	require.Equal(t, labels.FromStrings(
		"__name__", "servers.web01.cpu",
		"__g0__", "servers", "__g1__", "web01", "__g2__", "cpu", "__gn__", "3",
	), ls)
	name, tags := SeriesName(ls)
	require.Equal(t, "servers.web01.cpu", name)
	require.Equal(t, map[string]string{"name": "servers.web01.cpu"}, tags)
}

func TestSeriesNameTagged(t *testing.T) {
	// Tags sorted as graphite-web formats them; Prometheus labels are tags.
	name, tags := SeriesName(labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", "200"))
	require.Equal(t, "http_requests_total;code=200;job=api", name)
	require.Equal(t, map[string]string{"name": "http_requests_total", "job": "api", "code": "200"}, tags)
}

func matcherStrings(ms []*labels.Matcher) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

func TestGlobMatchers(t *testing.T) {
	for _, tc := range []struct {
		glob string
		want []string
	}{
		{"a.b.c", []string{`__gn__="3"`, `__name__="a.b.c"`}},
		{"a.*.c", []string{`__gn__="3"`, `__g0__="a"`, `__g2__="c"`}},
		{"*.*.*", []string{`__gn__="3"`}},
		{"a.{b,c}.d", []string{`__gn__="3"`, `__g0__="a"`, `__g1__=~"(?:b|c)"`, `__g2__="d"`}},
		{"a.b[0-9].c", []string{`__gn__="3"`, `__g0__="a"`, `__g1__=~"b[0-9]"`, `__g2__="c"`}},
		{"a.web?", []string{`__gn__="2"`, `__g0__="a"`, `__g1__=~"web."`}},
		{"a.x[!ab]", []string{`__gn__="2"`, `__g0__="a"`, `__g1__=~"x[^ab]"`}},
		// Regexp metacharacters in a glob are literal.
		{"a+b.c(d)*", []string{`__gn__="2"`, `__g0__="a+b"`, `__g1__=~"c\\(d\\).*"`}},
		{"a.{cpu*,mem}", []string{`__gn__="2"`, `__g0__="a"`, `__g1__=~"(?:cpu.*|mem)"`}},
	} {
		ms, err := GlobMatchers(tc.glob)
		require.NoError(t, err, tc.glob)
		require.Equal(t, tc.want, matcherStrings(ms), tc.glob)
	}
	for _, bad := range []string{"a.{b", "a.b}", "a.[bc", "a..b"} {
		_, err := GlobMatchers(bad)
		require.Error(t, err, bad)
	}
}

// TestGlobMatchesLikeGraphite checks the translated regexps against what
// each glob must and must not match.
func TestGlobMatchesLikeGraphite(t *testing.T) {
	for _, tc := range []struct {
		glob     string
		match    []string
		notMatch []string
	}{
		{"web*", []string{"web", "web01"}, []string{"xweb", "we"}},
		{"w?b", []string{"wab", "web"}, []string{"wb", "weeb"}},
		{"{a,b}c", []string{"ac", "bc"}, []string{"c", "abc"}},
		{"b[0-9]", []string{"b0", "b9"}, []string{"b", "ba", "b10"}},
		{"a.b", nil, nil}, // literal, below
		{"x.y+", nil, nil},
		{"v[a-c-]", []string{"va", "v-"}, []string{"vd"}},
		{"^$*", []string{"^$", "^$x"}, []string{"x"}},
	} {
		if !HasGlob(tc.glob) {
			continue
		}
		re, err := nodeRegexp(tc.glob)
		require.NoError(t, err, tc.glob)
		r := regexp.MustCompile("^(?:" + re + ")$")
		for _, s := range tc.match {
			require.True(t, r.MatchString(s), "%s should match %s (re %s)", tc.glob, s, re)
		}
		for _, s := range tc.notMatch {
			require.False(t, r.MatchString(s), "%s should not match %s (re %s)", tc.glob, s, re)
		}
	}
}

func TestExpandDottedBraces(t *testing.T) {
	require.Equal(t, []string{"a.b.d", "c.d"}, ExpandDottedBraces("{a.b,c}.d"))
	require.Equal(t, []string{"x.{a,b}.y"}, ExpandDottedBraces("x.{a,b}.y"))
}

func TestTagMatchers(t *testing.T) {
	ms, err := TagMatchers([]string{"name=cpu", "dc!=x", "host=~web", "env!=~dev|test"})
	require.NoError(t, err)
	require.Equal(t, []string{`__name__="cpu"`, `dc!="x"`, `host=~"(?:web).*"`, `env!~"(?:dev|test).*"`, `__gn__=""`}, matcherStrings(ms))
	// Graphite's =~ is anchored at the start only.
	m := ms[2]
	require.True(t, m.Matches("web01"))
	require.False(t, m.Matches("aweb"))

	_, err = TagMatchers([]string{"dc!=x"})
	require.Error(t, err, "only empty-matching expressions")
	_, err = TagMatchers([]string{"novalue"})
	require.Error(t, err)
	_, err = TagMatchers([]string{"a=~("})
	require.Error(t, err)
}

func TestNodeAndTagNames(t *testing.T) {
	require.Equal(t, "__g2__", NodeLabel(2))
	require.Equal(t, "__g70__", NodeLabel(70))
	// The mapping's own labels are internal: they are no Graphite tag.
	for _, l := range []string{"__gn__", "__g12__"} {
		require.Empty(t, TagName(l), l)
	}
	require.Equal(t, "name", TagName("__name__"))
	require.Equal(t, "dc", TagName("dc"))
	require.Equal(t, "__name__", LabelName("name"))
	require.Equal(t, "dc", LabelName("dc"))
}
