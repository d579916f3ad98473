package render

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/meridianhq/meridian/pkg/graphite/functions"
)

// Part is a render answer in FormatPart.
type Part struct {
	// Fetched are the names of the series each fetch of the evaluation
	// returned, fetches in the order they were made.
	Fetched [][]string `json:"fetched"`
	// Series is the answer before consolidation.
	Series []PartSeries `json:"series"`
}

// PartSeries is one series of a Part.
type PartSeries struct {
	Name              string            `json:"name"`
	Tags              map[string]string `json:"tags"`
	PathExpression    string            `json:"pathExpression"`
	ConsolidationFunc string            `json:"consolidationFunc"`
	XFilesFactor      float64           `json:"xFilesFactor"`
	Start             int64             `json:"start"`
	End               int64             `json:"end"`
	Step              int64             `json:"step"`
	Values            PartValues        `json:"values"`
}

// NewPart is the Part of evaluated series and the fetches that made them.
func NewPart(fetched [][]string, all []*functions.Series) Part {
	p := Part{Fetched: fetched, Series: make([]PartSeries, len(all))}
	if p.Fetched == nil {
		p.Fetched = [][]string{}
	}
	for i, s := range all {
		p.Series[i] = PartSeries{
			Name: s.Name, Tags: s.Tags, PathExpression: s.PathExpression,
			ConsolidationFunc: s.ConsolidationFunc, XFilesFactor: s.XFilesFactor,
			Start: s.Start, End: s.End, Step: s.Step, Values: s.Values,
		}
	}
	return p
}

// Series is s as the evaluator's series.
func (s PartSeries) Series() *functions.Series {
	return &functions.Series{
		Name: s.Name, Tags: s.Tags, PathExpression: s.PathExpression,
		ConsolidationFunc: s.ConsolidationFunc, XFilesFactor: s.XFilesFactor,
		Start: s.Start, End: s.End, Step: s.Step, Values: s.Values,
	}
}

// PartValues are values in JSON that keep every float64: null for NaN
// (Graphite's null), "+Inf" and "-Inf" for the infinities, numbers
// otherwise.
type PartValues []float64

// MarshalJSON implements json.Marshaler.
func (v PartValues) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+8*len(v))
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case math.IsNaN(x):
			b = append(b, "null"...)
		case math.IsInf(x, 1):
			b = append(b, `"+Inf"`...)
		case math.IsInf(x, -1):
			b = append(b, `"-Inf"`...)
		default:
			b = strconv.AppendFloat(b, x, 'g', -1, 64)
		}
	}
	return append(b, ']'), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *PartValues) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*v = nil
		return nil
	}
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return errors.New("values: not an array")
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	out := PartValues{}
	if s != "" {
		out = make(PartValues, 0, strings.Count(s, ",")+1)
		for e := range strings.SplitSeq(s, ",") {
			e = strings.TrimSpace(e)
			switch e {
			case "null":
				out = append(out, math.NaN())
			case `"+Inf"`:
				out = append(out, math.Inf(1))
			case `"-Inf"`:
				out = append(out, math.Inf(-1))
			default:
				x, err := strconv.ParseFloat(e, 64)
				if err != nil {
					return fmt.Errorf("values: %q is not a number", e)
				}
				out = append(out, x)
			}
		}
	}
	*v = out
	return nil
}
