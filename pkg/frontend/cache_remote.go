package frontend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/golang/snappy"
	dskitcache "github.com/grafana/dskit/cache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
)

// Results cache backends (-frontend.results-cache.backend).
const (
	CacheBackendInMemory  = "inmemory"
	CacheBackendMemcached = "memcached"
	CacheBackendRedis     = "redis"
)

// extentCache holds the cached extents of each key (tenant, query, step).
// The in-memory LRU is one implementation; memcached and redis share
// remoteCache, so several frontends share one cache and it survives their
// restarts.
type extentCache interface {
	get(ctx context.Context, key string) []extent
	// add stores n with the key's extents. seen are the extents get
	// returned for this request: a shared cache merges n into them instead
	// of reading the key again; the in-memory cache merges under its lock.
	add(ctx context.Context, key string, seen []extent, n extent, step int64)
}

// RemoteCacheConfig configures the shared results-cache backends.
type RemoteCacheConfig struct {
	Backend   string                           `yaml:"backend"`
	TTL       time.Duration                    `yaml:"ttl"`
	Memcached dskitcache.MemcachedClientConfig `yaml:"memcached"`
	Redis     RedisConfig                      `yaml:"redis"`
}

// RedisConfig is the redis connection of the results cache.
type RedisConfig struct {
	Address  string        `yaml:"address"`
	DB       int           `yaml:"db"`
	Username string        `yaml:"username"`
	Password string        `yaml:"password"`
	Timeout  time.Duration `yaml:"timeout"`
}

// RegisterFlags registers the -frontend.results-cache.* backend flags.
func (c *RemoteCacheConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Backend, "frontend.results-cache.backend", CacheBackendInMemory, "Where the results cache lives: inmemory (an LRU in this process, bounded by -frontend.results-cache.max-size-bytes), memcached or redis (shared by all query-frontends, survives restarts).")
	f.DurationVar(&c.TTL, "frontend.results-cache.ttl", 7*24*time.Hour, "How long memcached or redis keep a cached result.")
	c.Memcached.RegisterFlagsWithPrefix("frontend.results-cache.memcached.", f)
	f.StringVar(&c.Redis.Address, "frontend.results-cache.redis.address", "", "host:port of the redis server of the results cache.")
	f.IntVar(&c.Redis.DB, "frontend.results-cache.redis.db", 0, "Redis database number of the results cache.")
	f.StringVar(&c.Redis.Username, "frontend.results-cache.redis.username", "", "Redis ACL user name, if the server requires one.")
	f.StringVar(&c.Redis.Password, "frontend.results-cache.redis.password", "", "Redis password, if the server requires one.")
	f.DurationVar(&c.Redis.Timeout, "frontend.results-cache.redis.timeout", 500*time.Millisecond, "Timeout of one redis operation; a slow cache is treated as a miss.")
}

// Validate checks the backend and its address.
func (c *RemoteCacheConfig) Validate() error {
	switch c.Backend {
	case CacheBackendInMemory:
	case CacheBackendMemcached:
		if len(c.Memcached.Addresses) == 0 {
			return errors.New("-frontend.results-cache.backend=memcached needs -frontend.results-cache.memcached.addresses")
		}
	case CacheBackendRedis:
		if c.Redis.Address == "" {
			return errors.New("-frontend.results-cache.backend=redis needs -frontend.results-cache.redis.address")
		}
	default:
		return fmt.Errorf("-frontend.results-cache.backend=%q: use inmemory, memcached or redis", c.Backend)
	}
	if c.TTL <= 0 {
		return errors.New("-frontend.results-cache.ttl must be positive")
	}
	return nil
}

// remoteKV is what remoteCache needs of memcached or redis.
type remoteKV interface {
	getMulti(ctx context.Context, keys []string) map[string][]byte
	set(key string, value []byte, ttl time.Duration)
	stop()
}

// newRemoteCache connects the configured shared backend.
func newRemoteCache(cfg RemoteCacheConfig, logger log.Logger, reg prometheus.Registerer) (*remoteCache, error) {
	var kv remoteKV
	switch cfg.Backend {
	case CacheBackendMemcached:
		c, err := dskitcache.NewMemcachedClientWithConfig(logger, "frontend-results", cfg.Memcached, prometheus.WrapRegistererWithPrefix("meridian_frontend_memcached_", reg))
		if err != nil {
			return nil, fmt.Errorf("create results-cache memcached client: %w", err)
		}
		kv = dskitKV{c}
	case CacheBackendRedis:
		kv = newRedisKV(cfg.Redis, logger)
	default:
		return nil, fmt.Errorf("results cache backend %q is not a shared one", cfg.Backend)
	}
	return &remoteCache{
		kv: kv, ttl: cfg.TTL, logger: logger,
		errors: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "meridian_frontend_cache_decode_errors_total",
			Help: "Results read from memcached or redis that could not be decoded (treated as misses and overwritten).",
		}),
	}, nil
}

// remoteCache keeps each key's extents as one snappy-compressed JSON value
// under a hashed key (memcached keys are at most 250 bytes, without spaces).
type remoteCache struct {
	kv     remoteKV
	ttl    time.Duration
	logger log.Logger
	errors prometheus.Counter
}

func remoteKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return "meridian-fe-v1:" + hex.EncodeToString(h[:])
}

// wireExtent is an extent as stored in a shared cache.
type wireExtent struct {
	Start int64        `json:"s"`
	End   int64        `json:"e"`
	M     model.Matrix `json:"m"`
	Ann   []wireAnn    `json:"a,omitempty"`
}

type wireAnn struct {
	Start    int64    `json:"s"`
	End      int64    `json:"e"`
	Warnings []string `json:"w,omitempty"`
	Infos    []string `json:"i,omitempty"`
}

func encodeExtents(exts []extent) ([]byte, error) {
	w := make([]wireExtent, len(exts))
	for i, e := range exts {
		w[i] = wireExtent{Start: e.start, End: e.end, M: e.m}
		for _, a := range e.ann {
			w[i].Ann = append(w[i].Ann, wireAnn{Start: a.start, End: a.end, Warnings: a.warnings, Infos: a.infos})
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	return snappy.Encode(nil, b), nil
}

func decodeExtents(b []byte) ([]extent, error) {
	raw, err := snappy.Decode(nil, b)
	if err != nil {
		return nil, err
	}
	var w []wireExtent
	d := json.NewDecoder(bytes.NewReader(raw))
	if err := d.Decode(&w); err != nil {
		return nil, err
	}
	out := make([]extent, len(w))
	for i, e := range w {
		out[i] = extent{timeRange: timeRange{e.Start, e.End}, m: e.M}
		for _, a := range e.Ann {
			out[i].ann = append(out[i].ann, annSpan{timeRange: timeRange{a.Start, a.End}, warnings: a.Warnings, infos: a.Infos})
		}
	}
	return out, nil
}

func (c *remoteCache) get(ctx context.Context, key string) []extent {
	rk := remoteKey(key)
	b, ok := c.kv.getMulti(ctx, []string{rk})[rk]
	if !ok {
		return nil
	}
	exts, err := decodeExtents(b)
	if err != nil {
		c.errors.Inc()
		level.Warn(c.logger).Log("msg", "results cache entry could not be decoded; treated as a miss", "err", err)
		return nil
	}
	return exts
}

// add merges n into seen, the extents read for this request, and stores
// them. Two frontends adding to one key at once may lose one's extent: that
// is a later miss, never a wrong answer, since each stored value is a
// complete, consistent set of extents.
func (c *remoteCache) add(_ context.Context, key string, seen []extent, n extent, step int64) {
	exts := addExtent(seen, n, step)
	b, err := encodeExtents(exts)
	if err != nil {
		level.Warn(c.logger).Log("msg", "results cache entry could not be encoded; not cached", "err", err)
		return
	}
	c.kv.set(remoteKey(key), b, c.ttl)
}

func (c *remoteCache) stop() { c.kv.stop() }

// dskitKV adapts dskit's memcached client.
type dskitKV struct{ c dskitcache.Cache }

func (d dskitKV) getMulti(ctx context.Context, keys []string) map[string][]byte {
	return d.c.GetMulti(ctx, keys)
}
func (d dskitKV) set(key string, value []byte, ttl time.Duration) { d.c.SetAsync(key, value, ttl) }
func (d dskitKV) stop()                                           { d.c.Stop() }

// redisKV talks to one redis server. Writes are synchronous but bounded by
// the timeout; the frontend stores after it has answered the client.
type redisKV struct {
	c       *redis.Client
	timeout time.Duration
	logger  log.Logger
}

func newRedisKV(cfg RedisConfig, logger log.Logger) *redisKV {
	return &redisKV{
		c: redis.NewClient(&redis.Options{
			Addr: cfg.Address, DB: cfg.DB, Username: cfg.Username, Password: cfg.Password,
			DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
		}),
		timeout: cfg.Timeout,
		logger:  logger,
	}
}

func (r *redisKV) getMulti(ctx context.Context, keys []string) map[string][]byte {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	vals, err := r.c.MGet(ctx, keys...).Result()
	out := map[string][]byte{}
	if err != nil {
		level.Warn(r.logger).Log("msg", "results cache redis read failed; treated as a miss", "err", err)
		return out
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[keys[i]] = []byte(s)
		}
	}
	return out
}

func (r *redisKV) set(key string, value []byte, ttl time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	if err := r.c.Set(ctx, key, value, ttl).Err(); err != nil {
		level.Warn(r.logger).Log("msg", "results cache redis write failed; not cached", "err", err)
	}
}

func (r *redisKV) stop() { _ = r.c.Close() }
