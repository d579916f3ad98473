// Package ringutil holds what the rings of store-gateways and compactors
// share: joining a ring as an ACTIVE member that leaves on shutdown and
// forgets peers that died long ago, and hashing keys onto the ring.
package ringutil

import (
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/netutil"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
)

// AutoForgetPeriods is how many heartbeat timeouts a member may miss
// before a peer removes it from the ring.
const AutoForgetPeriods = 10

// LifecyclerConfig describes this process' membership of a ring.
type LifecyclerConfig struct {
	ID               string
	Addr             string // empty: the first private address
	Port             int
	NumTokens        int
	HeartbeatPeriod  time.Duration
	HeartbeatTimeout time.Duration
}

// NewLifecycler registers this process in the ring stored under key in
// kvCfg, ACTIVE at once, leaving it when stopped. name labels metrics and
// logs.
func NewLifecycler(name, key string, cfg LifecyclerConfig, kvCfg kv.Config, logger log.Logger, reg prometheus.Registerer) (*ring.BasicLifecycler, error) {
	addr := cfg.Addr
	if addr == "" {
		var err error
		addr, err = netutil.GetFirstAddressOf(netutil.PrivateNetworkInterfacesWithFallback([]string{"eth0", "en0"}, logger), logger, false)
		if err != nil {
			level.Warn(logger).Log("msg", "no address found for the ring; advertising 127.0.0.1, set the ring's instance-addr flag", "ring", name, "err", err)
			addr = "127.0.0.1"
		}
	}
	store, err := kv.NewClient(kvCfg, ring.GetCodec(), kv.RegistererWithKVName(reg, name+"-lifecycler"), logger)
	if err != nil {
		return nil, fmt.Errorf("create the %s ring KV client: %w", name, err)
	}
	var delegate ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.ACTIVE, cfg.NumTokens)
	delegate = ring.NewLeaveOnStoppingDelegate(delegate, logger)
	delegate = ring.NewAutoForgetDelegate(AutoForgetPeriods*cfg.HeartbeatTimeout, delegate, logger)
	return ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
		ID:               cfg.ID,
		Addr:             net.JoinHostPort(addr, strconv.Itoa(cfg.Port)),
		HeartbeatPeriod:  cfg.HeartbeatPeriod,
		HeartbeatTimeout: cfg.HeartbeatTimeout,
		NumTokens:        cfg.NumTokens,
	}, name, key, store, delegate, logger, reg)
}

// Token hashes the parts, separated by '/', onto the ring.
func Token(parts ...[]byte) uint32 {
	h := fnv.New32a()
	for i, p := range parts {
		if i > 0 {
			_, _ = h.Write([]byte{'/'})
		}
		_, _ = h.Write(p)
	}
	return h.Sum32()
}
