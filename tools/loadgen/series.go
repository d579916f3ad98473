package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/prompb"
)

// kind says how a series' value evolves from one sample to the next.
type kind uint8

const (
	kindCounter   kind = iota // monotonic increase
	kindGauge                 // random walk, never negative
	kindBucket                // classic histogram _bucket{le=...}
	kindHistSum               // classic histogram _sum
	kindHistCount             // classic histogram _count
)

// seriesSpec is one generated series: its labels and how its value moves.
type seriesSpec struct {
	labels []prompb.Label
	kind   kind
	seed   uint64  // per-series randomness
	init   float64 // first value
	rate   float64 // counter: mean increase per second; gauge: step size
	res    float64 // value resolution (0 = none): values are multiples of it
	histID uint64  // histogram: shared by all series of one histogram
	le     float64 // bucket upper bound (+Inf allowed)
	mean   float64 // histogram: mean observed value (exponential distribution)
}

// templateEntry is one series of a scrape target before target labels are added.
type templateEntry struct {
	name   string
	extra  []prompb.Label
	kind   kind
	rate   float64
	res    float64
	init   float64
	hist   int // index of the histogram within the target (kindBucket/Sum/Count)
	le     float64
	mean   float64
	obsPer float64 // histogram: mean observations per second
}

var histogramBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, math.Inf(1)}

// targetTemplate returns the series one simulated scrape target exposes: a
// mix of counters, gauges and classic histograms modelled on an application
// instrumented with client_golang running next to node_exporter.
// It returns 96 series.
func targetTemplate() []templateEntry {
	var t []templateEntry
	lbl := func(kv ...string) []prompb.Label {
		out := make([]prompb.Label, 0, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	handlers := []string{"/api/v1/query", "/api/v1/push", "/metrics"}
	// 18 counters.
	for _, h := range handlers {
		for _, m := range []string{"GET", "POST"} {
			for _, c := range []string{"200", "404", "500"} {
				r := 20.0
				switch c {
				case "404":
					r = 0.5
				case "500":
					r = 0.05
				}
				t = append(t, templateEntry{name: "http_requests_total", extra: lbl("code", c, "handler", h, "method", m), kind: kindCounter, rate: r, res: 1})
			}
		}
	}
	// 3 histograms × (12 buckets + _sum + _count) = 42 series.
	for i, h := range handlers {
		mean := []float64{0.08, 0.02, 0.004}[i]
		for _, le := range histogramBounds {
			t = append(t, templateEntry{name: "http_request_duration_seconds_bucket", extra: lbl("handler", h, "le", formatLe(le)), kind: kindBucket, hist: i, le: le, mean: mean, obsPer: 20})
		}
		t = append(t, templateEntry{name: "http_request_duration_seconds_sum", extra: lbl("handler", h), kind: kindHistSum, hist: i, mean: mean, obsPer: 20})
		t = append(t, templateEntry{name: "http_request_duration_seconds_count", extra: lbl("handler", h), kind: kindHistCount, hist: i, mean: mean, obsPer: 20})
	}
	// 20 counters: node_cpu_seconds_total.
	for cpu := 0; cpu < 4; cpu++ {
		for _, mode := range []string{"idle", "iowait", "irq", "system", "user"} {
			r := map[string]float64{"idle": 0.7, "iowait": 0.02, "irq": 0.005, "system": 0.08, "user": 0.2}[mode]
			t = append(t, templateEntry{name: "node_cpu_seconds_total", extra: lbl("cpu", strconv.Itoa(cpu), "mode", mode), kind: kindCounter, rate: r, res: 0.01})
		}
	}
	// 5 more counters.
	for _, dev := range []string{"eth0", "lo"} {
		t = append(t, templateEntry{name: "node_network_receive_bytes_total", extra: lbl("device", dev), kind: kindCounter, rate: 250e3, res: 1})
		t = append(t, templateEntry{name: "node_network_transmit_bytes_total", extra: lbl("device", dev), kind: kindCounter, rate: 180e3, res: 1})
	}
	t = append(t, templateEntry{name: "process_cpu_seconds_total", kind: kindCounter, rate: 0.15, res: 0.01})
	// 11 gauges.
	t = append(t,
		templateEntry{name: "node_memory_MemAvailable_bytes", kind: kindGauge, init: 6e9, rate: 4e6, res: 4096},
		templateEntry{name: "node_load1", kind: kindGauge, init: 1.5, rate: 0.1, res: 0.01},
		templateEntry{name: "go_goroutines", kind: kindGauge, init: 120, rate: 3, res: 1},
		templateEntry{name: "process_resident_memory_bytes", kind: kindGauge, init: 3e8, rate: 1e6, res: 4096},
		templateEntry{name: "go_memstats_heap_inuse_bytes", kind: kindGauge, init: 1.5e8, rate: 2e6, res: 8192},
		templateEntry{name: "container_memory_working_set_bytes", extra: lbl("container", "app"), kind: kindGauge, init: 3.2e8, rate: 1e6, res: 4096},
		templateEntry{name: "container_memory_working_set_bytes", extra: lbl("container", "sidecar"), kind: kindGauge, init: 4e7, rate: 1e5, res: 4096},
		templateEntry{name: "up", kind: kindGauge, init: 1, rate: 0, res: 1},
	)
	for _, mp := range []string{"/", "/data", "/var"} {
		t = append(t, templateEntry{name: "node_filesystem_avail_bytes", extra: lbl("mountpoint", mp), kind: kindGauge, init: 5e10, rate: 1e7, res: 4096})
	}
	return t
}

func formatLe(le float64) string {
	if math.IsInf(le, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(le, 'f', -1, 64)
}

var (
	jobs       = []string{"api-gateway", "checkout", "payments", "search", "ingest", "auth", "frontend", "billing"}
	namespaces = []string{"prod", "staging", "platform", "monitoring"}
)

// buildSeries returns the specs of n series for the tenant with index
// tenantIdx. firstTarget is the global index of the tenant's first target so
// that targets (and so label sets) differ across tenants. It returns the
// number of targets used.
func buildSeries(mode string, tenantIdx, n, firstTarget int, tmpl []templateEntry, seed uint64) ([]seriesSpec, int) {
	specs := make([]seriesSpec, 0, n)
	if mode == "minimal" {
		for i := 0; i < n; i++ {
			s := mix(seed ^ uint64(tenantIdx)<<40 ^ uint64(i))
			specs = append(specs, seriesSpec{
				labels: []prompb.Label{{Name: "__name__", Value: "loadgen_series"}, {Name: "series_id", Value: strconv.Itoa(i)}},
				kind:   kindGauge, seed: s, init: 100, rate: 1, res: 0.01,
			})
		}
		return specs, 0
	}
	cluster := fmt.Sprintf("cluster-%d", tenantIdx)
	targets := 0
	for g := firstTarget; len(specs) < n; g++ {
		targets++
		h := mix(seed ^ uint64(g))
		job := jobs[g%len(jobs)]
		ns := namespaces[(g/len(jobs))%len(namespaces)]
		pod := fmt.Sprintf("%s-%08x-%s", job, uint32(h), strconv.FormatUint(h>>40, 36))
		instance := fmt.Sprintf("10.%d.%d.%d:%d", (g>>16)&255, (g>>8)&255, g&255, 8080+int(h>>60))
		common := []prompb.Label{
			{Name: "cluster", Value: cluster},
			{Name: "instance", Value: instance},
			{Name: "job", Value: job},
			{Name: "namespace", Value: ns},
			{Name: "pod", Value: pod},
		}
		for i, e := range tmpl {
			if len(specs) == n {
				break
			}
			ls := make([]prompb.Label, 0, 1+len(common)+len(e.extra))
			ls = append(ls, prompb.Label{Name: "__name__", Value: e.name})
			ls = append(ls, common...)
			ls = append(ls, e.extra...)
			slices.SortFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
			s := seriesSpec{
				labels: ls,
				kind:   e.kind,
				seed:   mix(h ^ uint64(i+1)*0x9e3779b97f4a7c15),
				rate:   e.rate,
				res:    e.res,
				le:     e.le,
				mean:   e.mean,
			}
			switch e.kind {
			case kindCounter:
				// A counter that has been running for up to a day.
				s.init = roundTo(e.rate*86400*unit(s.seed, -1), e.res)
			case kindGauge:
				s.init = roundTo(e.init*(0.5+unit(s.seed, -1)), e.res)
			default:
				s.histID = mix(h ^ uint64(e.hist+1)<<32)
				s.rate = e.obsPer
			}
			specs = append(specs, s)
		}
	}
	return specs, targets
}

// mix is splitmix64's finalizer: a cheap, well-distributed hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit returns a deterministic number in [0, 1) for (seed, step).
func unit(seed uint64, step int64) float64 {
	return float64(mix(seed^uint64(step)*0xd6e8feb86659fd93)>>11) / (1 << 53)
}

func roundTo(v, res float64) float64 {
	if res <= 0 {
		return v
	}
	return math.Round(v/res) * res
}

// histObservations is the number of observations a histogram records in
// step (step -1 is its history before the first sample). It is the same for
// every series of one histogram, which keeps buckets, _sum and _count
// consistent even when they travel in different requests.
func histObservations(histID uint64, perSec, intervalSec float64, step int64) float64 {
	if step < 0 {
		return math.Floor(perSec * 86400 * unit(histID, -1))
	}
	return math.Floor(perSec * intervalSec * (0.5 + unit(histID, step)))
}

// histDelta is how much a histogram series grows in step.
func histDelta(s *seriesSpec, intervalSec float64, step int64) float64 {
	obs := histObservations(s.histID, s.rate, intervalSec, step)
	switch s.kind {
	case kindBucket:
		if math.IsInf(s.le, 1) {
			return obs
		}
		// Exponentially distributed observations with mean s.mean.
		return math.Floor(obs * (1 - math.Exp(-s.le/s.mean)))
	case kindHistCount:
		return obs
	default: // kindHistSum
		return roundTo(obs*s.mean*(0.8+0.4*unit(s.histID^0x5bd1e995, step)), 0.001)
	}
}

// initialValue is the series' value at its first sample.
func initialValue(s *seriesSpec, intervalSec float64) float64 {
	switch s.kind {
	case kindCounter, kindGauge:
		return s.init
	default:
		return histDelta(s, intervalSec, -1)
	}
}

// nextValue returns the series' value at step given its value at step-1.
func nextValue(s *seriesSpec, prev, intervalSec float64, step int64) float64 {
	switch s.kind {
	case kindCounter:
		return prev + roundTo(s.rate*intervalSec*(0.5+unit(s.seed, step)), s.res)
	case kindGauge:
		v := roundTo(prev+s.rate*(2*unit(s.seed, step)-1), s.res)
		if v < 0 {
			v = -v
		}
		return v
	default:
		return prev + histDelta(s, intervalSec, step)
	}
}
