package querier

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	graphiteapi "github.com/meridianhq/meridian/pkg/graphite/api"
	"github.com/meridianhq/meridian/pkg/graphite/mapping"
	"github.com/meridianhq/meridian/pkg/ingester"
)

// BenchmarkGraphiteReadPath runs the Graphite benchmark's two queries
// (docs/benchmarks.md, "Graphite") through the whole read path in one
// process: a real ingester behind gRPC on loopback, the querier's queryable
// and the Graphite API. Sizes as scripts/bench-graphite.sh: 1 000 series ×
// 24 h at 10 s, and a tree of 100 000 leaves.
//
//	go test ./pkg/querier -run XXX -bench GraphiteReadPath -benchmem -benchtime 10x
func BenchmarkGraphiteReadPath(b *testing.B) {
	const (
		tenant = "graphite-bench"
		step   = int64(10)
		points = 8640
		nser   = 1000
	)
	// Nothing is shipped here: keep the cut blocks on the ingester's disk,
	// as a real one does for -ingester.retention-period after shipping.
	ing, addr := serveIngester(b, "ing-0", func(c *ingester.Config) {
		c.RetentionPeriod = 48 * time.Hour
		// No head compaction while measuring: it would run in this process
		// and be counted in cpu-ms/op.
		c.HeadCompactionInterval = time.Hour
	})
	lim := defaults()
	lim.GraphiteStep = model.Duration(time.Duration(step) * time.Second)
	lim.GraphiteMaxSeriesPerRender, lim.GraphiteMaxPointsPerRender = 0, 0
	lim.MaxSeriesPerQuery = 0
	q := NewQueryable(Config{}, readRing(b, 1, addr), newPool(b), nil, fixedLimits{lim}, log.NewNopLogger())
	api := graphiteapi.New(q, fixedLimits{lim}, log.NewNopLogger(), prometheus.NewRegistry())

	ctx := user.InjectOrgID(context.Background(), tenant)
	until := time.Now().Unix() / step * step
	from := until - points*step
	want := make([]float64, points) // sumSeries at each interval
	// Time-major, as carbon clients send: the head only takes samples
	// within its appendable window.
	const stepsPerPush = 60
	for i0 := int64(0); i0 < points; i0 += stepsPerPush {
		req := &prompb.WriteRequest{}
		for s := 0; s < nser; s++ {
			ts := prompb.TimeSeries{Labels: prompb.FromLabels(mapping.PathLabels(fmt.Sprintf("bench.s%05d.cpu", s)), nil)}
			for i := i0; i < min(i0+stepsPerPush, points); i++ {
				v := float64((int64(s)*7 + i*13) % 100)
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: (from + (i+1)*step) * 1000, Value: v})
				want[i] += v
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		resp, err := ing.Push(ctx, req)
		require.NoError(b, err)
		require.Empty(b, resp.Errors)
	}
	for a := 0; a < 100; a++ {
		req := &prompb.WriteRequest{}
		for l := 0; l < 1000; l++ {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  prompb.FromLabels(mapping.PathLabels(fmt.Sprintf("tree.%d.%d", a, l)), nil),
				Samples: []prompb.Sample{{Timestamp: until * 1000, Value: 1}},
			})
		}
		_, err := ing.Push(ctx, req)
		require.NoError(b, err)
	}

	run := func(b *testing.B, path string, params url.Values, check func([]byte)) {
		b.ReportAllocs()
		// CPU time per query, as well as wall time: steadier than wall
		// time on a shared machine.
		cpu0 := processCPU(b)
		checked := false
		for b.Loop() {
			req := httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil).WithContext(ctx)
			rec := httptest.NewRecorder()
			api.Routes()[path](rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
			}
			if !checked { // once: decoding the answer is not the server's time
				b.StopTimer()
				before := processCPU(b)
				check(rec.Body.Bytes())
				checked = true
				cpu0 += processCPU(b) - before
				b.StartTimer()
			}
		}
		b.ReportMetric(float64((processCPU(b)-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
	}
	b.Run("render-sumSeries", func(b *testing.B) {
		params := url.Values{"target": {"sumSeries(bench.*.cpu)"}, "format": {"json"},
			"from": {strconv.FormatInt(from, 10)}, "until": {strconv.FormatInt(until, 10)}}
		run(b, "/render", params, func(body []byte) {
			got := renderValues(b, body)
			require.Equal(b, want, got)
		})
	})
	b.Run("find-tree.*.*", func(b *testing.B) {
		params := url.Values{"query": {"tree.*.*"}, "format": {"completer"}}
		run(b, "/metrics/find", params, func(body []byte) {
			require.Equal(b, 100_000, countCompleterPaths(b, body))
		})
	})
}

// renderValues is the datapoints' values of a one-series render answer.
func renderValues(b *testing.B, body []byte) []float64 {
	var out []struct {
		Datapoints [][2]*float64 `json:"datapoints"`
	}
	require.NoError(b, json.Unmarshal(body, &out))
	require.Len(b, out, 1)
	vals := make([]float64, len(out[0].Datapoints))
	for i, p := range out[0].Datapoints {
		require.NotNil(b, p[0], "point %d of %d is null: %s", i, len(out[0].Datapoints), body[:300])
		vals[i] = *p[0]
	}
	return vals
}

func countCompleterPaths(b *testing.B, body []byte) int {
	var out struct {
		Metrics []struct {
			Path string `json:"path"`
		} `json:"metrics"`
	}
	require.NoError(b, json.Unmarshal(body, &out))
	return len(out.Metrics)
}

// processCPU is the user and system CPU time this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
