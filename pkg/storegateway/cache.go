package storegateway

import (
	"container/list"
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	dskitcache "github.com/grafana/dskit/cache"
	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
)

// Cache backends of -store-gateway.cache.backend.
const (
	CacheBackendInMemory  = "inmemory"
	CacheBackendMemcached = "memcached"
	CacheBackendNone      = "none"
)

// memcachedTTL is how long a cached page of an immutable block object is
// kept in memcached; blocks never change, so only eviction matters.
const memcachedTTL = 7 * 24 * time.Hour

// CacheConfig configures the cache of index and chunk pages read from
// object storage.
type CacheConfig struct {
	Backend          string                           `yaml:"backend"`
	InMemoryMaxBytes flagext.Bytes                    `yaml:"inmemory_max_size_bytes"`
	Memcached        dskitcache.MemcachedClientConfig `yaml:"memcached"`
}

// RegisterFlags registers the cache flags under -store-gateway.cache.
func (c *CacheConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Backend, "store-gateway.cache.backend", CacheBackendInMemory, "Cache of the index and chunk pages the store-gateway reads from object storage: inmemory (an LRU in this process), memcached, or none.")
	c.InMemoryMaxBytes = 256 << 20
	f.Var(&c.InMemoryMaxBytes, "store-gateway.cache.inmemory.max-size-bytes", "Size of the in-memory LRU cache of index and chunk pages.")
	c.Memcached.RegisterFlagsWithPrefix("store-gateway.cache.memcached.", f)
}

// Validate checks the configuration.
func (c *CacheConfig) Validate() error {
	switch c.Backend {
	case CacheBackendInMemory:
		if c.InMemoryMaxBytes <= 0 {
			return fmt.Errorf("store-gateway in-memory cache size must be positive, got %d", c.InMemoryMaxBytes)
		}
	case CacheBackendMemcached:
		if len(c.Memcached.Addresses) == 0 {
			return fmt.Errorf("store-gateway memcached cache needs -store-gateway.cache.memcached.addresses")
		}
	case CacheBackendNone:
	default:
		return fmt.Errorf("unknown store-gateway cache backend %q, want %s, %s or %s", c.Backend, CacheBackendInMemory, CacheBackendMemcached, CacheBackendNone)
	}
	return nil
}

// Cache holds pages of block objects by key.
type Cache interface {
	// Fetch returns the values found; missing keys are absent.
	Fetch(ctx context.Context, keys []string) map[string][]byte
	// Store adds a value; it may be dropped.
	Store(key string, value []byte)
	Stop()
}

// NewCache creates the configured cache. reg receives memcached client
// metrics.
func NewCache(cfg CacheConfig, logger log.Logger, reg prometheus.Registerer) (Cache, error) {
	switch cfg.Backend {
	case CacheBackendMemcached:
		// dskit's client metrics (cache_requests_total, ...) get a prefix of
		// their own: meridian_storegateway_memcached_*.
		c, err := dskitcache.NewMemcachedClientWithConfig(logger, "store-gateway", cfg.Memcached, prometheus.WrapRegistererWithPrefix("meridian_storegateway_memcached_", reg))
		if err != nil {
			return nil, fmt.Errorf("create store-gateway memcached client: %w", err)
		}
		return &memcachedCache{c: c}, nil
	case CacheBackendNone:
		return noCache{}, nil
	default:
		return NewLRUCache(int64(cfg.InMemoryMaxBytes)), nil
	}
}

type noCache struct{}

func (noCache) Fetch(context.Context, []string) map[string][]byte { return nil }
func (noCache) Store(string, []byte)                              {}
func (noCache) Stop()                                             {}

// memcachedCache stores pages in memcached through dskit's client.
type memcachedCache struct{ c dskitcache.Cache }

func (m *memcachedCache) Fetch(ctx context.Context, keys []string) map[string][]byte {
	mk := make([]string, len(keys))
	for i, k := range keys {
		mk[i] = memcachedKey(k)
	}
	got := m.c.GetMulti(ctx, mk)
	out := make(map[string][]byte, len(got))
	for i, k := range keys {
		if v, ok := got[mk[i]]; ok {
			out[k] = v
		}
	}
	return out
}

func (m *memcachedCache) Store(key string, value []byte) {
	m.c.SetAsync(memcachedKey(key), value, memcachedTTL)
}

func (m *memcachedCache) Stop() { m.c.Stop() }

// memcachedKey makes a key memcached accepts: no spaces or control
// characters, at most 250 bytes.
func memcachedKey(k string) string {
	k = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, k)
	if len(k) > 250 {
		k = k[len(k)-250:]
	}
	return k
}

// LRUCache is an in-memory cache bounded by the bytes of its values.
type LRUCache struct {
	max int64

	mu    sync.Mutex
	size  int64
	ll    *list.List
	items map[string]*list.Element
}

type lruEntry struct {
	key   string
	value []byte
}

// NewLRUCache returns an LRU cache holding at most maxBytes of values.
func NewLRUCache(maxBytes int64) *LRUCache {
	return &LRUCache{max: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
}

// Fetch implements Cache.
func (c *LRUCache) Fetch(_ context.Context, keys []string) map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]byte, len(keys))
	for _, k := range keys {
		if e, ok := c.items[k]; ok {
			c.ll.MoveToFront(e)
			out[k] = e.Value.(*lruEntry).value
		}
	}
	return out
}

// getBytes returns the value of one key, without Fetch's result map and
// without turning the key into a string.
func (c *LRUCache) getBytes(key []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[string(key)]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruEntry).value, true
}

// Store implements Cache. Values must not be modified afterwards.
func (c *LRUCache) Store(key string, value []byte) {
	sz := int64(len(value) + len(key))
	if sz > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.items[key] = c.ll.PushFront(&lruEntry{key: key, value: value})
	c.size += sz
	for c.size > c.max {
		last := c.ll.Back()
		ent := last.Value.(*lruEntry)
		c.ll.Remove(last)
		delete(c.items, ent.key)
		c.size -= int64(len(ent.value) + len(ent.key))
	}
}

// Stop implements Cache.
func (c *LRUCache) Stop() {}

// Size returns the bytes held.
func (c *LRUCache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
