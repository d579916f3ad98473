package querier

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/ingester"
)

// retainedTestValue is the value of sample i of series s of a tenant: each
// tenant's chunks differ, so a chunk read from a buffer another query
// overwrote shows wrong values.
func retainedTestValue(tenant string, s, i int) float64 {
	return float64(len(tenant)*1_000_000 + s*1000 + (i*7919)%997)
}

// pushRetainedTestData writes nser series of n samples, one every second up
// to now, time-major as a scraper does.
func pushRetainedTestData(t *testing.T, ings []*ingester.Ingester, tenant string, nser, n int, now int64) {
	t.Helper()
	ctx := user.InjectOrgID(context.Background(), tenant)
	for i0 := 0; i0 < n; i0 += 100 {
		req := &prompb.WriteRequest{}
		for s := 0; s < nser; s++ {
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "s", Value: fmt.Sprintf("%04d", s)}}}
			for i := i0; i < min(i0+100, n); i++ {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: now - int64(n-i)*1000, Value: retainedTestValue(tenant, s, i)})
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		for _, ing := range ings {
			resp, err := ing.Push(ctx, req)
			require.NoError(t, err)
			require.Empty(t, resp.Errors)
		}
	}
}

// readRetainedTestSet reads a set's samples into Go memory and checks them.
func readRetainedTestSet(t *testing.T, set storage.SeriesSet, tenant string, nser, n int, now int64) map[string][]sample {
	t.Helper()
	got := map[string][]sample{}
	for set.Next() {
		s := set.At()
		var samples []sample
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			samples = append(samples, sample{ts, v})
		}
		require.NoError(t, it.Err())
		got[s.Labels().Get("s")] = samples
	}
	require.NoError(t, set.Err())
	require.Len(t, got, nser)
	for s := 0; s < nser; s++ {
		samples := got[fmt.Sprintf("%04d", s)]
		require.Len(t, samples, n, "series %d", s)
		for i, smp := range samples {
			if smp.t != now-int64(n-i)*1000 || smp.v != retainedTestValue(tenant, s, i) {
				require.Failf(t, "wrong sample", "tenant %s series %d sample %d: got %v, want %v@%d", tenant, s, i, smp, retainedTestValue(tenant, s, i), now-int64(n-i)*1000)
			}
		}
	}
	return got
}

// TestSeriesReadBuffersUntilClose: series read over real gRPC alias the
// received buffers, which stay the querier's until Close: other queries
// that receive meanwhile (and reuse gRPC's buffer pool) do not change them.
// Close gives them back, and queries after it still read what was written.
// Three replicas at RF 3: the replication set returns after two, the third
// answer is dropped.
func TestSeriesReadBuffersUntilClose(t *testing.T) {
	const nser, n = 300, 600
	now := time.Now().UnixMilli()
	var ings []*ingester.Ingester
	var addrs []string
	for k := 0; k < 3; k++ {
		ing, addr := serveIngester(t, fmt.Sprintf("r-ing-%d", k))
		ings, addrs = append(ings, ing), append(addrs, addr)
	}
	pushRetainedTestData(t, ings, "team-a", nser, n, now)
	pushRetainedTestData(t, ings, "team-bb", nser, n, now)
	q := NewQueryable(Config{}, readRing(t, 3, addrs...), newPool(t), nil, fixedLimits{defaults()}, log.NewNopLogger())
	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")

	selectTenant := func(tenant string) (storage.Querier, storage.SeriesSet) {
		qr, err := q.Querier(0, now)
		require.NoError(t, err)
		return qr, qr.Select(user.InjectOrgID(context.Background(), tenant), true, nil, m)
	}
	held := func(qr storage.Querier) int {
		// Ingesters only: the merged querier is the ingesters' querier.
		qr.(*querier).mtx.Lock()
		defer qr.(*querier).mtx.Unlock()
		total := 0
		for _, c := range qr.(*querier).closers {
			total += c.(*ingesterQuerier).retained.held()
		}
		return total
	}

	// Received, not read yet.
	qa, setA := selectTenant("team-a")
	require.Positive(t, held(qa), "the series' buffers are kept")

	// Other queries receive, read, close: their buffers go back to the
	// pool and are reused by the next ones.
	for round := 0; round < 4; round++ {
		qb, setB := selectTenant("team-bb")
		readRetainedTestSet(t, setB, "team-bb", nser, n, now)
		closers := qb.(*querier).closers
		require.NoError(t, qb.Close())
		for _, c := range closers {
			require.Zero(t, c.(*ingesterQuerier).retained.held(), "Close frees the buffers")
		}
	}

	// The first query's series still read what was written.
	gotA := readRetainedTestSet(t, setA, "team-a", nser, n, now)
	require.NoError(t, qa.Close())
	require.Zero(t, held(qa))

	// After Close, queries reusing the freed buffers read their own data,
	// and what was read from the first one is intact.
	for round := 0; round < 2; round++ {
		qb, setB := selectTenant("team-bb")
		readRetainedTestSet(t, setB, "team-bb", nser, n, now)
		require.NoError(t, qb.Close())
	}
	for s := 0; s < nser; s++ {
		for i, smp := range gotA[fmt.Sprintf("%04d", s)] {
			require.Equal(t, retainedTestValue("team-a", s, i), smp.v)
		}
	}

	// Labels only: the buffers are freed as soon as converted.
	qr, err := q.Querier(0, now)
	require.NoError(t, err)
	set := qr.Select(user.InjectOrgID(context.Background(), "team-a"), true, &storage.SelectHints{Start: 0, End: now, Func: "series"}, m)
	require.Zero(t, held(qr))
	count := 0
	for set.Next() {
		require.Equal(t, "m", set.At().Labels().Get("__name__"))
		count++
	}
	require.NoError(t, set.Err())
	require.Equal(t, nser, count)
	require.NoError(t, qr.Close())
}
