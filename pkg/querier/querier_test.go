package querier

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/meridianhq/meridian/pkg/ingester"
	ingclient "github.com/meridianhq/meridian/pkg/ingester/client"
	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/grpccodec"
)

type fixedLimits struct{ l limits.Limits }

// sample is one sample of a series.
type sample struct {
	t int64
	v float64
}

func (f fixedLimits) Limits(string) limits.Limits { return f.l }

func defaults() limits.Limits {
	var l limits.Limits
	flagext.DefaultValues(&l)
	return l
}

// serveIngester starts a real ingester behind a real gRPC server on loopback.
func serveIngester(t testing.TB, id string, opts ...func(*ingester.Config)) (*ingester.Ingester, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var cfg ingester.Config
	flagext.DefaultValues(&cfg)
	cfg.TSDBDir = t.TempDir()
	cfg.Lifecycler.RingConfig.KVStore.Store = "inmemory"
	cfg.Lifecycler.RingConfig.ReplicationFactor = 1
	cfg.Lifecycler.RingConfig.HeartbeatTimeout = time.Minute
	cfg.Lifecycler.HeartbeatPeriod = time.Second
	cfg.Lifecycler.HeartbeatTimeout = time.Minute
	cfg.Lifecycler.NumTokens = 1
	cfg.Lifecycler.InstanceID = id
	cfg.Lifecycler.InstanceAddr = "127.0.0.1"
	cfg.Lifecycler.InstancePort = lis.Addr().(*net.TCPAddr).Port
	cfg.ShipInterval, cfg.HeadCompactionInterval = time.Minute, time.Minute
	for _, o := range opts {
		o(&cfg)
	}
	ing, err := ingester.New(cfg, fixedLimits{defaults()}, nil, log.NewNopLogger(), promslog.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	srv := grpc.NewServer(grpc.ForceServerCodec(grpccodec.Codec{}),
		grpc.ChainUnaryInterceptor(middleware.ServerUserHeaderInterceptor),
		grpc.ChainStreamInterceptor(middleware.StreamServerUserHeaderInterceptor))
	meridianpb.RegisterIngesterServer(srv, ing)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		_ = services.StopAndAwaitTerminated(context.Background(), ing)
	})
	return ing, lis.Addr().String()
}

// readRing is a ring over the given addresses, all ACTIVE, replicating rf times.
func readRing(t testing.TB, rf int, addrs ...string) *ring.Ring {
	t.Helper()
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	desc := ring.NewDesc()
	for i, a := range addrs {
		desc.AddIngester(fmt.Sprintf("ing-%d", i), a, "", []uint32{uint32(i+1) * 1000}, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
	}
	require.NoError(t, store.CAS(context.Background(), "ingester", func(any) (any, bool, error) { return desc, true, nil }))
	var cfg ring.Config
	cfg.HeartbeatTimeout = time.Hour
	cfg.ReplicationFactor = rf
	r, err := ring.NewWithStoreClientAndStrategy(cfg, "ingester", "ingester", store, ring.NewDefaultReplicationStrategy(), prometheus.NewRegistry(), log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	return r
}

func newPool(t testing.TB) *ingclient.Pool {
	var cfg ingclient.Config
	flagext.DefaultValues(&cfg)
	p := ingclient.NewPool(cfg, nil, "", nil, log.NewNopLogger(), prometheus.NewRegistry())
	t.Cleanup(p.Close)
	return p
}

func pushSeries(t *testing.T, ing *ingester.Ingester, tenant string, n int, samples []prompb.Sample) {
	t.Helper()
	req := &prompb.WriteRequest{}
	for i := 0; i < n; i++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "instance", Value: fmt.Sprintf("i%d", i)}},
			Samples: samples,
		})
	}
	resp, err := ing.Push(user.InjectOrgID(context.Background(), tenant), req)
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
}

func selectAll(t *testing.T, q storage.Queryable, tenant string, mint, maxt int64) (map[string][]sample, error) {
	t.Helper()
	qr, err := q.Querier(mint, maxt)
	require.NoError(t, err)
	defer qr.Close()
	ss := qr.Select(user.InjectOrgID(context.Background(), tenant), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	out := map[string][]sample{}
	for ss.Next() {
		s := ss.At()
		it := s.Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			out[s.Labels().String()] = append(out[s.Labels().String()], sample{ts, v})
		}
	}
	return out, ss.Err()
}

func TestReplicasAreDeduplicated(t *testing.T) {
	now := time.Now().UnixMilli()
	samples := []prompb.Sample{{Timestamp: now - 3000, Value: 1}, {Timestamp: now - 2000, Value: 2}, {Timestamp: now - 1000, Value: 3}}
	// RF 3 with quorum writes: every acknowledged sample is on at least 2 of
	// the 3 replicas. Replica k missed sample k.
	var addrs []string
	for k := 0; k < 3; k++ {
		ing, addr := serveIngester(t, fmt.Sprintf("q-ing-%d", k))
		var have []prompb.Sample
		for i, s := range samples {
			if i != k {
				have = append(have, s)
			}
		}
		pushSeries(t, ing, "team-a", 2, have)
		addrs = append(addrs, addr)
	}

	q := NewQueryable(Config{}, readRing(t, 3, addrs...), newPool(t), nil, fixedLimits{defaults()}, log.NewNopLogger())
	for i := 0; i < 5; i++ { // whichever quorum of replicas answers first
		got, err := selectAll(t, q, "team-a", 0, now)
		require.NoError(t, err)
		require.Len(t, got, 2)
		for _, s := range got {
			require.Equal(t, []sample{{now - 3000, 1}, {now - 2000, 2}, {now - 1000, 3}}, s, "each sample exactly once, gaps of one replica filled by the others")
		}
	}

	other, err := selectAll(t, q, "team-b", 0, now)
	require.NoError(t, err)
	require.Empty(t, other, "tenants are isolated")
}

func TestReadToleratesOneDownReplicaAtRF3(t *testing.T) {
	now := time.Now().UnixMilli()
	samples := []prompb.Sample{{Timestamp: now - 1000, Value: 7}}
	ing1, a1 := serveIngester(t, "q-ing-a")
	ing2, a2 := serveIngester(t, "q-ing-b")
	pushSeries(t, ing1, "team-a", 1, samples)
	pushSeries(t, ing2, "team-a", 1, samples)
	// The third replica's address accepts no connection.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := lis.Addr().String()
	require.NoError(t, lis.Close())

	q := NewQueryable(Config{}, readRing(t, 3, a1, a2, dead), newPool(t), nil, fixedLimits{defaults()}, log.NewNopLogger())
	got, err := selectAll(t, q, "team-a", 0, now)
	require.NoError(t, err)
	require.Len(t, got, 1)
	for _, s := range got {
		require.Equal(t, []sample{{now - 1000, 7}}, s)
	}
}

func TestMaxSeriesPerQuery(t *testing.T) {
	now := time.Now().UnixMilli()
	ing, addr := serveIngester(t, "q-ing-c")
	pushSeries(t, ing, "team-a", 5, []prompb.Sample{{Timestamp: now - 1000, Value: 1}})
	lim := defaults()
	lim.MaxSeriesPerQuery = 3
	q := NewQueryable(Config{}, readRing(t, 1, addr), newPool(t), nil, fixedLimits{lim}, log.NewNopLogger())
	_, err := selectAll(t, q, "team-a", 0, now)
	require.Error(t, err)
	require.Contains(t, err.Error(), ErrIDMaxSeriesPerQuery)
	require.Contains(t, err.Error(), "-querier.max-fetched-series-per-query")

	lim.MaxSeriesPerQuery = 5
	q = NewQueryable(Config{}, readRing(t, 1, addr), newPool(t), nil, fixedLimits{lim}, log.NewNopLogger())
	got, err := selectAll(t, q, "team-a", 0, now)
	require.NoError(t, err)
	require.Len(t, got, 5)
}
