package frontend

import (
	"slices"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// apiResponse is the envelope of every Prometheus API answer.
type apiResponse struct {
	Status    string      `json:"status"`
	Data      *matrixData `json:"data,omitempty"`
	ErrorType string      `json:"errorType,omitempty"`
	Error     string      `json:"error,omitempty"`
	Warnings  []string    `json:"warnings,omitempty"`
	Infos     []string    `json:"infos,omitempty"`
}

// matrixData is the data of a range query answer.
type matrixData struct {
	ResultType string       `json:"resultType"`
	Result     model.Matrix `json:"result"`
}

// part is the answer for the points of one range: from the cache or from
// one downstream request.
type part struct {
	r      timeRange
	m      model.Matrix
	cached bool
	// warnings and infos came with the sub-query (or cached extent) that
	// answered the part.
	warnings, infos []string
}

// extract returns the samples of m within r. The returned series share
// memory with m; neither may be modified afterwards.
func extract(m model.Matrix, r timeRange) model.Matrix {
	out := make(model.Matrix, 0, len(m))
	for _, s := range m {
		lo := sort.Search(len(s.Values), func(i int) bool { return int64(s.Values[i].Timestamp) >= r.start })
		hi := sort.Search(len(s.Values), func(i int) bool { return int64(s.Values[i].Timestamp) > r.end })
		hlo := sort.Search(len(s.Histograms), func(i int) bool { return int64(s.Histograms[i].Timestamp) >= r.start })
		hhi := sort.Search(len(s.Histograms), func(i int) bool { return int64(s.Histograms[i].Timestamp) > r.end })
		if lo == hi && hlo == hhi {
			continue
		}
		ns := &model.SampleStream{Metric: s.Metric}
		if lo < hi {
			ns.Values = s.Values[lo:hi:hi]
		}
		if hlo < hhi {
			ns.Histograms = s.Histograms[hlo:hhi:hhi]
		}
		out = append(out, ns)
	}
	return out
}

// concat merges matrices of disjoint ranges given in time order: the
// samples of each series are concatenated, and the series sorted by labels
// as the PromQL engine sorts a range query's result. The result never
// shares a slice with its inputs.
func concat(parts ...model.Matrix) model.Matrix {
	byKey := map[string]*model.SampleStream{}
	out := model.Matrix{}
	for _, m := range parts {
		for _, s := range m {
			if len(s.Values) == 0 && len(s.Histograms) == 0 {
				continue
			}
			k := s.Metric.String()
			dst, ok := byKey[k]
			if !ok {
				dst = &model.SampleStream{Metric: s.Metric}
				byKey[k] = dst
				out = append(out, dst)
			}
			dst.Values = append(dst.Values, s.Values...)
			dst.Histograms = append(dst.Histograms, s.Histograms...)
		}
	}
	sortMatrix(out)
	return out
}

// sortMatrix sorts series by labels.Compare, the order of promql.Matrix.
func sortMatrix(m model.Matrix) {
	ls := make(map[*model.SampleStream]labels.Labels, len(m))
	for _, s := range m {
		b := labels.NewScratchBuilder(len(s.Metric))
		for n, v := range s.Metric {
			b.Add(string(n), string(v))
		}
		b.Sort()
		ls[s] = b.Labels()
	}
	slices.SortStableFunc(m, func(a, b *model.SampleStream) int { return labels.Compare(ls[a], ls[b]) })
}

// union appends the strings of b missing from a, keeping order.
func union(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	return a
}

// matrixSize estimates the bytes m holds, for the cache budget.
func matrixSize(m model.Matrix) int {
	n := 24
	for _, s := range m {
		n += 64
		for k, v := range s.Metric {
			n += len(k) + len(v) + 32
		}
		n += len(s.Values) * 16
		for _, h := range s.Histograms {
			n += 64
			if h.Histogram != nil {
				n += len(h.Histogram.Buckets) * 32
			}
		}
	}
	return n
}
