package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/graphite/mapping"
)

// BenchmarkFind3LevelGlob: metrics/find with a glob on two of three levels
// over 100 000 untagged paths (100 hosts × 1000 metrics) in a TSDB head.
//
//	go test ./pkg/graphite/api -run XXX -bench Find3LevelGlob -benchmem
func BenchmarkFind3LevelGlob(b *testing.B) {
	db, err := tsdb.Open(b.TempDir(), promslog.NewNopLogger(), nil, tsdb.DefaultOptions(), nil)
	require.NoError(b, err)
	defer db.Close()
	app := db.AppenderV2(context.Background())
	for h := 0; h < 100; h++ {
		for m := 0; m < 1000; m++ {
			_, err := app.Append(0, mapping.PathLabels(fmt.Sprintf("bench.host%03d.metric%04d", h, m)), 0, 1000_000, 1, nil, nil, storage.AOptions{})
			require.NoError(b, err)
		}
	}
	require.NoError(b, app.Commit())
	a := newTestAPI(b, db)
	for _, q := range []string{"bench.host01*.*", "bench.*.metric012*"} {
		b.Run(q, func(b *testing.B) {
			params := url.Values{"query": {q}}
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/graphite/metrics/find?"+params.Encode(), nil).WithContext(tenantCtx())
				rec := httptest.NewRecorder()
				a.Find(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Body.String())
				}
			}
		})
	}
}
