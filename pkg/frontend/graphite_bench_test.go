package frontend

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	graphiteapi "github.com/meridianhq/meridian/pkg/graphite/api"
	"github.com/meridianhq/meridian/pkg/graphite/mapping"
	"github.com/meridianhq/meridian/pkg/limits"
)

// BenchmarkGraphiteRender: a 7-day render of sumSeries over 20 minutely
// series (10 080 intervals each) with maxDataPoints=1000, as a Grafana
// panel asks it: directly from the Graphite API, through the frontend
// uncached (Cache-Control: no-store: 7 parts of a day), and through the
// frontend from its cache.
func BenchmarkGraphiteRender(b *testing.B) {
	const days = 7
	db, err := tsdb.Open(b.TempDir(), promslog.NewNopLogger(), nil, tsdb.DefaultOptions(), nil)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, db.Close()) })
	app := db.AppenderV2(context.Background())
	for s := range 20 {
		ls := mapping.PathLabels(fmt.Sprintf("bench.host%02d.cpu", s))
		for i := int64(0); i < days*1440; i++ {
			_, err := app.Append(0, ls, 0, (graphiteT0+i*60+int64(s))*1000, float64(i%97+int64(s)), nil, nil, storage.AOptions{})
			require.NoError(b, err)
		}
	}
	require.NoError(b, app.Commit())
	lim := limits.Limits{GraphiteStep: model.Duration(time.Minute), GraphiteMaxSeriesPerRender: 1000, GraphiteMaxPointsPerRender: 10_000_000}
	api := graphiteapi.New(db, fakeLimits{lim}, log.NewNopLogger(), prometheus.NewRegistry())
	d := newFakeDownstream(b, func(w http.ResponseWriter, r *http.Request) {
		_, ctx, err := user.ExtractOrgIDFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		api.Render(w, r.WithContext(ctx))
	})
	cfg := testConfig(b, d.srv.URL)
	f, _ := startFrontend(b, cfg, graphiteTestLimits, nil, func() time.Time { return time.Unix(graphiteT0+30*86400, 0) })
	params := renderParams(graphiteT0, graphiteT0+days*86400-60, "sumSeries(bench.*.cpu)")
	params.Set("maxDataPoints", "1000")
	ctx := context.Background()

	_, want := direct(b, d, "t1", "/graphite/render", params)
	code, got := do(ctx, f.Handler(), "t1", "/graphite/render", params, nil)
	require.Equal(b, http.StatusOK, code)
	require.Equal(b, string(want), string(got))

	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			direct(b, d, "t1", "/graphite/render", params)
		}
	})
	b.Run("frontend-uncached", func(b *testing.B) {
		for b.Loop() {
			do(ctx, f.Handler(), "t1", "/graphite/render", params, http.Header{"Cache-Control": {"no-store"}})
		}
	})
	b.Run("frontend-cached", func(b *testing.B) {
		for b.Loop() {
			do(ctx, f.Handler(), "t1", "/graphite/render", params, nil)
		}
	})
}
