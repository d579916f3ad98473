package querier

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/grpccodec"
)

const grpcGatewaySeries = 200

// grpcGatewayValue is sample i of series s of block b in generation gen:
// every query (one generation each) reads other chunk bytes.
func grpcGatewayValue(gen, b, s, i int) float64 {
	return float64(gen*1_000_000 + b*10_000 + s*10 + i%7)
}

// grpcGateway is a store-gateway behind real gRPC. Every block it is asked
// for holds grpcGatewaySeries series of one XOR chunk of 120 samples, sent
// as one message per block; the generation is the value of the "gen"
// matcher. When failing, a stream breaks after its first message.
type grpcGateway struct {
	meridianpb.UnimplementedStoreGatewayServer
	blockIndex map[string]int
	failing    atomic.Bool
	failures   atomic.Int64
}

func (g *grpcGateway) Series(req *meridianpb.StoreSeriesRequest, srv meridianpb.StoreGateway_SeriesServer) error {
	gen := 0
	for _, m := range req.Matchers {
		if m.Name == "gen" {
			gen, _ = strconv.Atoi(m.Value)
		}
	}
	for _, id := range req.BlockIds {
		b := g.blockIndex[id]
		series := make([]prompb.ChunkedSeries, 0, grpcGatewaySeries)
		for s := 0; s < grpcGatewaySeries; s++ {
			chk := chunkenc.NewXORChunk()
			app, err := chk.Appender()
			if err != nil {
				return err
			}
			t0 := blockTime(id)
			for i := 0; i < 120; i++ {
				app.Append(0, t0+int64(i), grpcGatewayValue(gen, b, s, i))
			}
			series = append(series, prompb.ChunkedSeries{
				Labels: []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "block", Value: id}, {Name: "s", Value: fmt.Sprintf("%04d", s)}},
				Chunks: []prompb.Chunk{{MinTimeMs: t0, MaxTimeMs: t0 + 119, Type: prompb.Chunk_XOR, Data: chk.Bytes()}},
			})
		}
		if err := srv.Send(&meridianpb.StoreSeriesResponse{Series: series}); err != nil {
			return err
		}
		if g.failing.Load() {
			g.failures.Add(1)
			return errors.New("store-gateway went away")
		}
	}
	return srv.Send(&meridianpb.StoreSeriesResponse{QueriedBlocks: req.BlockIds})
}

type grpcGatewayClients map[string]meridianpb.StoreGatewayClient

func (c grpcGatewayClients) Get(addr string) (meridianpb.StoreGatewayClient, error) {
	return c[addr], nil
}

// serveGateway serves g on loopback and returns a client as the querier's
// (the pooled codec).
func serveGateway(t *testing.T, g *grpcGateway) meridianpb.StoreGatewayClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.ForceServerCodecV2(grpccodec.PooledCodec{}))
	meridianpb.RegisterStoreGatewayServer(srv, g)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.PooledCodec{})))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return meridianpb.NewStoreGatewayClient(conn)
}

// TestBlocksSeriesReadBuffersUntilClose: the store-gateway path keeps the
// received buffers until Close, as the ingester path does, also when a
// store-gateway breaks its stream half way and the blocks are read again
// from the other owner (the broken call's buffers are freed, its series
// never returned).
func TestBlocksSeriesReadBuffersUntilClose(t *testing.T) {
	bs, _, ids, _ := newTestBlocksStore(t)
	gateways := map[string]*grpcGateway{}
	clients := grpcGatewayClients{}
	for _, addr := range []string{"sg-1:9095", "sg-2:9095"} {
		g := &grpcGateway{blockIndex: map[string]int{}}
		for b, id := range ids {
			g.blockIndex[id] = b
		}
		gateways[addr] = g
		clients[addr] = serveGateway(t, g)
	}
	bs.clients = clients
	ctx := user.InjectOrgID(context.Background(), testTenantName)

	selectGen := func(gen int) (storage.Querier, storage.SeriesSet) {
		q, err := bs.Querier(testTenantName, 0, 3000)
		require.NoError(t, err)
		return q, q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"), labels.MustNewMatcher(labels.MatchEqual, "gen", strconv.Itoa(gen)))
	}
	read := func(set storage.SeriesSet, gen int) {
		t.Helper()
		n := 0
		for set.Next() {
			ls := set.At().Labels()
			b := slices.Index(ids, ls.Get("block"))
			require.GreaterOrEqual(t, b, 0, ls.String())
			s, err := strconv.Atoi(ls.Get("s"))
			require.NoError(t, err)
			it := set.At().Iterator(nil)
			i := 0
			for ; it.Next() == chunkenc.ValFloat; i++ {
				ts, v := it.At()
				if ts != blockTime(ids[b])+int64(i) || v != grpcGatewayValue(gen, b, s, i) {
					require.Failf(t, "wrong sample", "gen %d block %d series %d sample %d: got %v@%d, want %v@%d", gen, b, s, i, v, ts, grpcGatewayValue(gen, b, s, i), blockTime(ids[b])+int64(i))
				}
			}
			require.NoError(t, it.Err())
			require.Equal(t, 120, i)
			n++
		}
		require.NoError(t, set.Err())
		require.Equal(t, len(ids)*grpcGatewaySeries, n)
	}

	q1, set1 := selectGen(1)
	require.Positive(t, q1.(*blocksQuerier).retained.held())

	for gen := 2; gen <= 5; gen++ {
		broken := []string{"sg-1:9095", "sg-2:9095"}[gen%2]
		gateways[broken].failing.Store(true)
		q, set := selectGen(gen)
		gateways[broken].failing.Store(false)
		read(set, gen)
		require.NoError(t, q.Close())
		require.Zero(t, q.(*blocksQuerier).retained.held(), "Close frees the buffers")
	}
	require.Positive(t, gateways["sg-1:9095"].failures.Load()+gateways["sg-2:9095"].failures.Load(), "streams broke half way")

	read(set1, 1)
	require.NoError(t, q1.Close())
	require.Zero(t, q1.(*blocksQuerier).retained.held())
	q, set := selectGen(6)
	read(set, 6)
	require.NoError(t, q.Close())
}
