// Package matchers converts label matchers between Prometheus' model and
// the wire (prompb) form used between Meridian components.
package matchers

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// ToProto converts matchers to their wire form.
func ToProto(ms []*labels.Matcher) ([]prompb.LabelMatcher, error) {
	out := make([]prompb.LabelMatcher, 0, len(ms))
	for _, m := range ms {
		var t prompb.LabelMatcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = prompb.LabelMatcher_EQ
		case labels.MatchNotEqual:
			t = prompb.LabelMatcher_NEQ
		case labels.MatchRegexp:
			t = prompb.LabelMatcher_RE
		case labels.MatchNotRegexp:
			t = prompb.LabelMatcher_NRE
		default:
			return nil, fmt.Errorf("unknown matcher type %v", m.Type)
		}
		out = append(out, prompb.LabelMatcher{Type: t, Name: m.Name, Value: m.Value})
	}
	return out, nil
}

// FromProto converts wire matchers back, compiling regexps.
func FromProto(ms []prompb.LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(ms))
	for _, m := range ms {
		var t labels.MatchType
		switch m.Type {
		case prompb.LabelMatcher_EQ:
			t = labels.MatchEqual
		case prompb.LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case prompb.LabelMatcher_RE:
			t = labels.MatchRegexp
		case prompb.LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("unknown matcher type %v", m.Type)
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, fmt.Errorf("invalid matcher %s: %w", m.Name, err)
		}
		out = append(out, lm)
	}
	return out, nil
}
