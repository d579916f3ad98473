package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/grafana/dskit/user"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore/providers/filesystem"
	"google.golang.org/grpc"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/storage/bucket"
	"github.com/meridianhq/meridian/pkg/storegateway"
	sgclient "github.com/meridianhq/meridian/pkg/storegateway/client"
)

// fakeGateway answers Series for the blocks it has, or fails.
type fakeGateway struct {
	meridianpb.StoreGatewayClient
	mu     sync.Mutex
	has    map[string]bool
	fail   error
	called int
}

type fakeStream struct {
	grpc.ClientStream
	msgs []*meridianpb.StoreSeriesResponse
}

func (s *fakeStream) Recv() (*meridianpb.StoreSeriesResponse, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

// RecvMsg receives as the querier does, into the retaining message.
func (s *fakeStream) RecvMsg(m any) error {
	resp, err := s.Recv()
	if err != nil {
		return err
	}
	m.(*meridianpb.RetainedStoreSeriesResponse).StoreSeriesResponse = *resp
	return nil
}

func (g *fakeGateway) Series(_ context.Context, req *meridianpb.StoreSeriesRequest, _ ...grpc.CallOption) (meridianpb.StoreGateway_SeriesClient, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.called++
	if g.fail != nil {
		return nil, g.fail
	}
	var queried []string
	var series []prompb.ChunkedSeries
	for _, id := range req.BlockIds {
		if !g.has[id] {
			continue
		}
		queried = append(queried, id)
		chk := chunkenc.NewXORChunk()
		app, _ := chk.Appender()
		app.Append(0, blockTime(id), 1)
		series = append(series, prompb.ChunkedSeries{
			Labels: []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "block", Value: id}},
			Chunks: []prompb.Chunk{{MinTimeMs: blockTime(id), MaxTimeMs: blockTime(id), Type: prompb.Chunk_XOR, Data: chk.Bytes()}},
		})
	}
	return &fakeStream{msgs: []*meridianpb.StoreSeriesResponse{{Series: series}, {QueriedBlocks: queried}}}, nil
}

var blockTimes = map[string]int64{}

func blockTime(id string) int64 { return blockTimes[id] }

type fakeClients map[string]*fakeGateway

func (f fakeClients) Get(addr string) (meridianpb.StoreGatewayClient, error) { return f[addr], nil }

// newTestBlocksStore puts three blocks in a bucket and two store-gateways,
// both owners of every block (replication 2), in a ring.
func newTestBlocksStore(t *testing.T) (*BlocksStore, fakeClients, []string, *prometheus.Registry) {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	var ids []string
	for i := 0; i < 3; i++ {
		id := ulid.MustNew(uint64(i+1), nil)
		meta := &bucket.BlockMeta{BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: int64(i) * 1000, MaxTime: int64(i+1) * 1000, Version: 1}}
		require.NoError(t, bucket.WriteMeta(context.Background(), bkt, testTenantName, meta))
		ids = append(ids, id.String())
		blockTimes[id.String()] = int64(i)*1000 + 500
	}

	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	desc := ring.NewDesc()
	desc.AddIngester("sg-1", "sg-1:9095", "", []uint32{100, 3_000_000_000}, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
	desc.AddIngester("sg-2", "sg-2:9095", "", []uint32{1_500_000_000, 4_000_000_000}, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
	require.NoError(t, store.CAS(context.Background(), storegateway.RingKey, func(any) (any, bool, error) { return desc, true, nil }))
	var rcfg storegateway.RingConfig
	rcfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	rcfg.ReplicationFactor = 2
	rcfg.HeartbeatTimeout = time.Hour
	sgRing, err := storegateway.NewRing(rcfg, kv.Config{Mock: store}, log.NewNopLogger(), nil)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), sgRing))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), sgRing) })
	r := sgRing.Client()
	require.Eventually(t, func() bool {
		rs, err := r.GetAllHealthy(sgclient.RingOp)
		return err == nil && len(rs.Instances) == 2
	}, 5*time.Second, 10*time.Millisecond)

	clients := fakeClients{
		"sg-1:9095": {has: map[string]bool{ids[0]: true, ids[1]: true, ids[2]: true}},
		"sg-2:9095": {has: map[string]bool{ids[0]: true, ids[1]: true, ids[2]: true}},
	}
	reg := prometheus.NewPedanticRegistry()
	cfg := BucketBlocksConfig{SyncInterval: time.Minute, IgnoreDeletionMarksDelay: time.Hour}
	return NewBlocksStore(cfg, bkt, r, sgShards{}, clients, log.NewNopLogger(), reg), clients, ids, reg
}

const testTenantName = "team-q"

func selectBlocks(t *testing.T, bs *BlocksStore) ([]string, error) {
	t.Helper()
	q, err := bs.Querier(testTenantName, 0, 3000)
	require.NoError(t, err)
	ctx := user.InjectOrgID(context.Background(), testTenantName)
	set := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	var got []string
	for set.Next() {
		got = append(got, set.At().Labels().Get("block"))
	}
	return got, set.Err()
}

func TestBlocksStoreAllBlocksQueried(t *testing.T) {
	bs, _, ids, _ := newTestBlocksStore(t)
	got, err := selectBlocks(t, bs)
	require.NoError(t, err)
	require.ElementsMatch(t, ids, got)
}

func TestBlocksStoreRetriesOtherOwner(t *testing.T) {
	for _, broken := range []string{"sg-1:9095", "sg-2:9095"} {
		t.Run("down "+broken, func(t *testing.T) {
			bs, clients, ids, _ := newTestBlocksStore(t)
			clients[broken].fail = errors.New("connection refused")
			got, err := selectBlocks(t, bs)
			require.NoError(t, err)
			require.ElementsMatch(t, ids, got, "every block answered by the other owner")
		})
	}
	t.Run("block missing on one owner", func(t *testing.T) {
		bs, clients, ids, _ := newTestBlocksStore(t)
		delete(clients["sg-1:9095"].has, ids[1])
		delete(clients["sg-2:9095"].has, ids[2])
		got, err := selectBlocks(t, bs)
		require.NoError(t, err)
		require.ElementsMatch(t, ids, got)
		require.Positive(t, testutil.ToFloat64(bs.retries), "the missing blocks were asked again")
	})
}

func TestBlocksStoreRefusesPartialAnswer(t *testing.T) {
	bs, clients, ids, _ := newTestBlocksStore(t)
	delete(clients["sg-1:9095"].has, ids[1])
	clients["sg-2:9095"].fail = errors.New("block corrupted or truncated")
	_, err := selectBlocks(t, bs)
	require.Error(t, err)
	require.Contains(t, err.Error(), ErrIDStoreConsistency)
	require.Contains(t, err.Error(), ids[1], "names the block")
	require.Contains(t, err.Error(), testTenantName, "names the tenant")
	require.NotContains(t, err.Error(), ids[0]+" of tenant", "blocks that were answered are not listed")
	var u interface{ Unavailable() bool }
	require.True(t, errors.As(err, &u) && u.Unavailable(), "answered as 503")
	require.EqualValues(t, 1, testutil.ToFloat64(bs.consistencyFailures))
	require.True(t, strings.Contains(err.Error(), "does not have it") || strings.Contains(err.Error(), "corrupted"))
}

// sgShards are fixed store-gateway shard sizes per tenant (0 when not listed).
type sgShards map[string]int

func (s sgShards) StoreGatewayTenantShardSize(tenant string) int { return s[tenant] }

// TestBlocksStoreAsksOnlyTheTenantsShard: with store_gateway_tenant_shard_size,
// a tenant's blocks are asked only of the store-gateways of its shard, the
// same shard the store-gateways sync (sgclient.TenantShard on both sides).
func TestBlocksStoreAsksOnlyTheTenantsShard(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	var ids []string
	has := map[string]bool{}
	for i := 0; i < 20; i++ {
		id := ulid.MustNew(uint64(100+i), nil)
		meta := &bucket.BlockMeta{BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: int64(i) * 100, MaxTime: int64(i+1) * 100, Version: 1}}
		require.NoError(t, bucket.WriteMeta(context.Background(), bkt, testTenantName, meta))
		ids = append(ids, id.String())
		has[id.String()] = true
		blockTimes[id.String()] = int64(i)*100 + 50
	}

	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	desc := ring.NewDesc()
	gen := ring.NewRandomTokenGeneratorWithSeed(3)
	var taken []uint32
	clients := fakeClients{}
	for i := 0; i < 5; i++ {
		tokens := gen.GenerateTokens(128, taken)
		taken = append(taken, tokens...)
		addr := fmt.Sprintf("sg-%d:9095", i)
		desc.AddIngester(fmt.Sprintf("sg-%d", i), addr, "", tokens, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
		clients[addr] = &fakeGateway{has: has}
	}
	require.NoError(t, store.CAS(context.Background(), storegateway.RingKey, func(any) (any, bool, error) { return desc, true, nil }))
	var rcfg storegateway.RingConfig
	rcfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	rcfg.HeartbeatTimeout = time.Hour
	sgRing, err := storegateway.NewRing(rcfg, kv.Config{Mock: store}, log.NewNopLogger(), nil)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), sgRing))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), sgRing) })
	r := sgRing.Client()
	require.Eventually(t, func() bool { return r.InstancesCount() == 5 }, 5*time.Second, 10*time.Millisecond)

	shard, err := sgclient.TenantShard(r, testTenantName, 2).GetAllHealthy(sgclient.RingOp)
	require.NoError(t, err)
	require.Len(t, shard.Instances, 2)
	inShard := map[string]bool{}
	for _, inst := range shard.Instances {
		inShard[inst.Addr] = true
	}

	cfg := BucketBlocksConfig{SyncInterval: time.Minute, IgnoreDeletionMarksDelay: time.Hour}
	bs := NewBlocksStore(cfg, bkt, r, sgShards{testTenantName: 2}, clients, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	q, err := bs.Querier(testTenantName, 0, 3000)
	require.NoError(t, err)
	set := q.Select(user.InjectOrgID(context.Background(), testTenantName), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	var got []string
	for set.Next() {
		got = append(got, set.At().Labels().Get("block"))
	}
	require.NoError(t, set.Err())
	require.ElementsMatch(t, ids, got, "every block answered")
	for addr, g := range clients {
		if !inShard[addr] {
			require.Zero(t, g.called, "store-gateway %s is outside the tenant's shard", addr)
		}
	}
}
