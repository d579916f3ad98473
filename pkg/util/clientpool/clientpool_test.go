package clientpool

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/grpcclient"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// An instance that left the ring loses its connection at the next
// check; stopping the pool closes the rest.
func TestPoolEvictsAddressesThatLeftTheRing(t *testing.T) {
	var cfg grpcclient.Config
	flagext.DefaultValues(&cfg)
	var mu sync.Mutex
	inRing := []string{"127.0.0.1:1", "127.0.0.1:2"}
	discovery := func() ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(inRing), nil
	}
	target := Target{Name: "store-gateway", MetricNoun: "storegateway", Plural: "store-gateways"}
	newClient := func(_ string, conn *grpc.ClientConn) (ringclient.PoolClient, error) {
		return &healthClient{HealthClient: grpc_health_v1.NewHealthClient(conn), conn: conn}, nil
	}
	p := newPool(target, cfg, discovery, ringclient.PoolConfig{CheckInterval: 10 * time.Millisecond}, newClient, log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), p))
	for _, addr := range inRing {
		_, err := p.Get(addr)
		require.NoError(t, err)
	}
	require.Equal(t, 2, p.pool.Count())

	mu.Lock()
	inRing = inRing[:1]
	mu.Unlock()
	require.Eventually(t, func() bool {
		return slices.Equal(p.pool.RegisteredAddresses(), []string{"127.0.0.1:1"})
	}, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), p))
	require.Zero(t, p.pool.Count())
}

type healthClient struct {
	grpc_health_v1.HealthClient
	conn *grpc.ClientConn
}

func (c *healthClient) Close() error { return c.conn.Close() }
