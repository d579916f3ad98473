package harness

import (
	"bytes"
	"fmt"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics scrapes /metrics and returns the parsed metric families.
func (p *Process) Metrics() map[string]*dto.MetricFamily {
	p.tb.Helper()
	code, body := p.Get("/metrics")
	if code != http.StatusOK {
		p.tb.Fatalf("GET /metrics: HTTP %d: %.500s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		p.tb.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// Metric scrapes /metrics and returns the sum over the series of name whose
// labels include all of labels (nil: every series), and whether any matched.
// For histograms and summaries, name may end in _count or _sum.
func (p *Process) Metric(name string, labels map[string]string) (float64, bool) {
	p.tb.Helper()
	v, ok, err := MetricValue(p.Metrics(), name, labels)
	if err != nil {
		p.tb.Fatalf("metric %s: %v", name, err)
	}
	return v, ok
}

// MetricValue sums the series of name in families whose labels include all
// of labels.
func MetricValue(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool, error) {
	suffix := ""
	mf := families[name]
	if mf == nil {
		for _, s := range []string{"_count", "_sum"} {
			if len(name) > len(s) && name[len(name)-len(s):] == s {
				if f := families[name[:len(name)-len(s)]]; f != nil {
					mf, suffix = f, s
				}
			}
		}
	}
	if mf == nil {
		return 0, false, nil
	}
	var sum float64
	found := false
	for _, m := range mf.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		v, err := metricNumber(mf.GetType(), m, suffix)
		if err != nil {
			return 0, false, err
		}
		sum += v
		found = true
	}
	return sum, found, nil
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		ok := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func metricNumber(t dto.MetricType, m *dto.Metric, suffix string) (float64, error) {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), nil
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), nil
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), nil
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		switch suffix {
		case "_count":
			return float64(m.GetHistogram().GetSampleCount()), nil
		case "_sum":
			return m.GetHistogram().GetSampleSum(), nil
		}
	case dto.MetricType_SUMMARY:
		switch suffix {
		case "_count":
			return float64(m.GetSummary().GetSampleCount()), nil
		case "_sum":
			return m.GetSummary().GetSampleSum(), nil
		}
	}
	return 0, fmt.Errorf("a %s needs the _count or _sum suffix", t)
}
