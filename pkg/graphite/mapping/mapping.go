// Package mapping is how Graphite series are stored as Prometheus series:
// the labels of a carbon path or tagged series (the write side) and the
// matchers of a glob or seriesByTag expression and the Graphite name of
// stored labels (the read side). Both sides share it so that what carbon
// stores is what the API finds.
package mapping

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// How Graphite series are stored (docs/graphite.md has the full story):
//
//   - an untagged path a.b.c is the series {__name__="a.b.c", __g0__="a",
//     __g1__="b", __g2__="c", __gn__="3"}: one label per node and the node
//     count, so a glob on any node is a postings lookup;
//   - a tagged series a.b;dc=x;host=h is {__name__="a.b", dc="x", host="h"}
//     with no node labels;
//   - any other Prometheus series is a tagged series: name = __name__,
//     tags = the other labels.
const (
	// NodeCountLabel holds the number of nodes of an untagged path.
	NodeCountLabel = "__gn__"
	// nodeLabelPrefix and nodeLabelSuffix surround a node's index.
	nodeLabelPrefix = "__g"
	nodeLabelSuffix = "__"
	// NameTag is Graphite's tag for the series name (__name__).
	NameTag = "name"
)

var nodeLabelNames = func() []string {
	out := make([]string, 64)
	for i := range out {
		out[i] = nodeLabelPrefix + strconv.Itoa(i) + nodeLabelSuffix
	}
	return out
}()

// NodeLabel is the label that holds node i (0-based) of an untagged path.
func NodeLabel(i int) string {
	if i < len(nodeLabelNames) {
		return nodeLabelNames[i]
	}
	return nodeLabelPrefix + strconv.Itoa(i) + nodeLabelSuffix
}

// PathLabels returns the labels an untagged path is stored as. The path must
// be valid (carbon's line parser checks it).
func PathLabels(path string) labels.Labels {
	nodes := strings.Split(path, ".")
	b := labels.NewScratchBuilder(len(nodes) + 2)
	b.Add(labels.MetricName, path)
	for i, n := range nodes {
		b.Add(NodeLabel(i), n)
	}
	b.Add(NodeCountLabel, strconv.Itoa(len(nodes)))
	b.Sort()
	return b.Labels()
}

// TaggedLabels returns the labels a tagged series is stored as: __name__ for
// the name and one label per tag.
func TaggedLabels(name string, tags map[string]string) labels.Labels {
	b := labels.NewScratchBuilder(len(tags) + 1)
	b.Add(labels.MetricName, name)
	for k, v := range tags {
		b.Add(k, v)
	}
	b.Sort()
	return b.Labels()
}

// isUntagged reports whether ls is an untagged Graphite path.
func isUntagged(ls labels.Labels) bool { return ls.Get(NodeCountLabel) != "" }

// SeriesName returns the Graphite name of stored labels and its tags: the
// path for an untagged series (tags {"name": path}); name;k1=v1;k2=v2 with
// tags sorted, as graphite-web formats tagged series, otherwise.
func SeriesName(ls labels.Labels) (string, map[string]string) {
	name := ls.Get(labels.MetricName)
	if isUntagged(ls) {
		return name, map[string]string{NameTag: name}
	}
	tags := map[string]string{NameTag: name}
	var parts []string
	ls.Range(func(l labels.Label) {
		if l.Name == labels.MetricName || strings.HasPrefix(l.Name, "__") {
			return
		}
		tags[l.Name] = l.Value
		parts = append(parts, ";"+l.Name+"="+l.Value)
	})
	sort.Strings(parts)
	return name + strings.Join(parts, ""), tags
}

// TagName maps a stored label name to its Graphite tag ("" for the path
// mapping's internal labels).
func TagName(l string) string {
	switch {
	case l == labels.MetricName:
		return NameTag
	case strings.HasPrefix(l, "__"):
		return ""
	}
	return l
}

// LabelName maps a Graphite tag to the stored label name.
func LabelName(tag string) string {
	if tag == NameTag {
		return labels.MetricName
	}
	return tag
}

// HasGlob reports whether s has a Graphite glob character.
func HasGlob(s string) bool { return strings.ContainsAny(s, "*?[]{}") }

// SplitNodes splits a path or glob at the dots outside {} and [].
func SplitNodes(glob string) ([]string, error) {
	var nodes []string
	depthBrace, inClass := 0, false
	start := 0
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; {
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
		case c == '{':
			depthBrace++
		case c == '}':
			if depthBrace == 0 {
				return nil, fmt.Errorf("unbalanced '}' at position %d of %q", i, glob)
			}
			depthBrace--
		case c == '.' && depthBrace == 0:
			nodes = append(nodes, glob[start:i])
			start = i + 1
		}
	}
	if depthBrace != 0 {
		return nil, fmt.Errorf("unclosed '{' in %q", glob)
	}
	if inClass {
		return nil, fmt.Errorf("unclosed '[' in %q", glob)
	}
	return append(nodes, glob[start:]), nil
}

// ExpandDottedBraces expands the {..} groups whose alternatives contain dots
// into separate globs, so every remaining glob has one pattern per node:
// {a.b,c}.d → a.b.d, c.d.
func ExpandDottedBraces(glob string) []string {
	depth, open := 0, -1
	for i := 0; i < len(glob); i++ {
		switch glob[i] {
		case '{':
			if depth == 0 {
				open = i
			}
			depth++
		case '}':
			depth--
			if depth == 0 {
				body := glob[open+1 : i]
				if !strings.Contains(body, ".") {
					continue
				}
				var out []string
				for _, alt := range splitAlternatives(body) {
					out = append(out, ExpandDottedBraces(glob[:open]+alt+glob[i+1:])...)
				}
				return out
			}
		}
	}
	return []string{glob}
}

// splitAlternatives splits the body of a {} group at its top-level commas.
func splitAlternatives(body string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, body[start:i])
				start = i + 1
			}
		}
	}
	return append(out, body[start:])
}

// nodeRegexp translates the glob of one node into an RE2 pattern (Prometheus
// anchors it at both ends): * any characters, ? one character, [...] a
// class ([!...] negated), {a,b} alternatives (which may hold globs); every
// other character is literal.
func nodeRegexp(glob string) (string, error) {
	var b strings.Builder
	if err := writeNodeRegexp(&b, glob); err != nil {
		return "", err
	}
	if _, err := regexp.Compile("^(?:" + b.String() + ")$"); err != nil {
		return "", fmt.Errorf("glob %q: %w", glob, err)
	}
	return b.String(), nil
}

func writeNodeRegexp(b *strings.Builder, glob string) error {
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			end := strings.IndexByte(glob[i+1:], ']')
			if end < 0 {
				return fmt.Errorf("unclosed '[' in %q", glob)
			}
			class := glob[i+1 : i+1+end]
			b.WriteByte('[')
			if strings.HasPrefix(class, "!") || strings.HasPrefix(class, "^") {
				b.WriteByte('^')
				class = class[1:]
			}
			if class == "" {
				return fmt.Errorf("empty character class in %q", glob)
			}
			for j := 0; j < len(class); j++ {
				switch ch := class[j]; ch {
				case '\\', '[', ']', '^':
					b.WriteByte('\\')
					b.WriteByte(ch)
				case '-':
					if j == 0 || j == len(class)-1 {
						b.WriteString(`\-`)
					} else {
						b.WriteByte('-')
					}
				default:
					b.WriteByte(ch)
				}
			}
			b.WriteByte(']')
			i += end + 1
		case '{':
			depth, end := 0, -1
			for j := i; j < len(glob); j++ {
				if glob[j] == '{' {
					depth++
				} else if glob[j] == '}' {
					depth--
					if depth == 0 {
						end = j
						break
					}
				}
			}
			if end < 0 {
				return fmt.Errorf("unclosed '{' in %q", glob)
			}
			b.WriteString("(?:")
			for k, alt := range splitAlternatives(glob[i+1 : end]) {
				if k > 0 {
					b.WriteByte('|')
				}
				if err := writeNodeRegexp(b, alt); err != nil {
					return err
				}
			}
			b.WriteByte(')')
			i = end
		case '}':
			return fmt.Errorf("unbalanced '}' in %q", glob)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return nil
}

// GlobMatchers translates a glob with one pattern per node (see
// ExpandDottedBraces) into the matchers that select the untagged series it
// matches: the node count and one matcher per node that is not just "*".
func GlobMatchers(glob string) ([]*labels.Matcher, error) {
	nodes, err := SplitNodes(glob)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n == "" {
			return nil, fmt.Errorf("empty node in %q", glob)
		}
	}
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, NodeCountLabel, strconv.Itoa(len(nodes)))}
	if !HasGlob(glob) {
		// A plain path: one postings list answers it.
		return append(ms, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, glob)), nil
	}
	node, err := NodeMatchers(nodes)
	if err != nil {
		return nil, err
	}
	return append(ms, node...), nil
}

// NodeMatchers returns the matchers of a split glob's nodes, one per node
// that is not "*".
func NodeMatchers(nodes []string) ([]*labels.Matcher, error) {
	var ms []*labels.Matcher
	for i, n := range nodes {
		m, err := nodeMatcher(NodeLabel(i), n)
		if err != nil {
			return nil, err
		}
		if m != nil {
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// nodeMatcher returns the matcher of one node's glob, nil for "*" (any value:
// the node count already says the node exists).
func nodeMatcher(label, glob string) (*labels.Matcher, error) {
	if glob == "" {
		return nil, fmt.Errorf("empty node in glob")
	}
	if !HasGlob(glob) {
		return labels.NewMatcher(labels.MatchEqual, label, glob)
	}
	if strings.Trim(glob, "*") == "" {
		return nil, nil
	}
	re, err := nodeRegexp(glob)
	if err != nil {
		return nil, err
	}
	return labels.NewMatcher(labels.MatchRegexp, label, re)
}

// TagExpr is one parsed seriesByTag expression.
type TagExpr struct {
	Tag, Op, Value string
}

// ParseTagExpr parses "tag=value", "tag!=value", "tag=~regexp" or
// "tag!=~regexp".
func ParseTagExpr(expr string) (TagExpr, error) {
	i := strings.IndexAny(expr, "!=")
	if i <= 0 {
		return TagExpr{}, fmt.Errorf("tag expression %q is not tag=value, tag!=value, tag=~regexp or tag!=~regexp", expr)
	}
	tag, rest := strings.TrimSpace(expr[:i]), expr[i:]
	var op string
	for _, o := range []string{"!=~", "=~", "!=", "="} {
		if strings.HasPrefix(rest, o) {
			op = o
			break
		}
	}
	if op == "" || tag == "" {
		return TagExpr{}, fmt.Errorf("tag expression %q is not tag=value, tag!=value, tag=~regexp or tag!=~regexp", expr)
	}
	return TagExpr{Tag: tag, Op: op, Value: rest[len(op):]}, nil
}

// matcher translates the expression. Graphite's =~ matches a regexp at the
// start of the value (Python's re.match); Prometheus anchors both ends, so
// the pattern gets a trailing .* .
func (e TagExpr) matcher() (*labels.Matcher, error) {
	name := e.Tag
	if name == NameTag {
		name = labels.MetricName
	}
	var t labels.MatchType
	value := e.Value
	switch e.Op {
	case "=":
		t = labels.MatchEqual
	case "!=":
		t = labels.MatchNotEqual
	case "=~", "!=~":
		t = labels.MatchRegexp
		if e.Op == "!=~" {
			t = labels.MatchNotRegexp
		}
		if _, err := regexp.Compile(value); err != nil {
			return nil, fmt.Errorf("regexp of tag expression %s%s%s: %w", e.Tag, e.Op, e.Value, err)
		}
		value = "(?:" + value + ").*"
	}
	return labels.NewMatcher(t, name, value)
}

// TagMatchers translates seriesByTag expressions into matchers over tagged
// series only (__gn__=""). At least one expression must require a non-empty
// value, as graphite-web requires.
func TagMatchers(exprs []string) ([]*labels.Matcher, error) {
	if len(exprs) == 0 {
		return nil, fmt.Errorf("seriesByTag needs at least one tag expression")
	}
	ms := make([]*labels.Matcher, 0, len(exprs)+1)
	nonEmpty := false
	for _, s := range exprs {
		e, err := ParseTagExpr(s)
		if err != nil {
			return nil, err
		}
		m, err := e.matcher()
		if err != nil {
			return nil, err
		}
		if !m.Matches("") {
			nonEmpty = true
		}
		ms = append(ms, m)
	}
	if !nonEmpty {
		return nil, fmt.Errorf("at least one tag expression of %q must require a non-empty value (e.g. name=cpu or host=~web)", strings.Join(exprs, ", "))
	}
	return append(ms, labels.MustNewMatcher(labels.MatchEqual, NodeCountLabel, "")), nil
}
