package storegateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Values of the kind label: which object of a block a read is of.
const (
	kindIndex  = "index"
	kindChunks = "chunks"
	kindHeader = "header"
)

type metrics struct {
	bytesFetched     *prometheus.CounterVec // by object kind: index, chunks
	getRangeRequests *prometheus.CounterVec
	cacheRequests    *prometheus.CounterVec
	cacheHits        *prometheus.CounterVec
	blocksLoaded     prometheus.Gauge
	blocksOwned      prometheus.Gauge
	tenantsOwned     prometheus.Gauge
	blockLoads       prometheus.Counter
	blockEvictions   prometheus.Counter
	blockLoadFailed  prometheus.Counter
	corruptedBlocks  prometheus.Counter
	readErrors       prometheus.Counter
	headerBytes      prometheus.Gauge
	headerBuildBytes prometheus.Histogram
	syncFailures     prometheus.Counter
	syncDuration     prometheus.Histogram
	requests         *prometheus.CounterVec
	requestDuration  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		bytesFetched: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_storegateway_bucket_bytes_fetched_total",
			Help: "Bytes the store-gateway read from object storage with ranged GETs, by kind of object (index, chunks, header).",
		}, []string{"kind"}),
		getRangeRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_storegateway_bucket_get_range_requests_total",
			Help: "Ranged GETs the store-gateway sent to object storage, by kind of object.",
		}, []string{"kind"}),
		cacheRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_storegateway_cache_requests_total",
			Help: "Pages of index or chunk objects looked up in the cache.",
		}, []string{"kind"}),
		cacheHits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_storegateway_cache_hits_total",
			Help: "Pages of index or chunk objects found in the cache; misses are requests minus hits.",
		}, []string{"kind"}),
		blocksLoaded: f.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_storegateway_blocks_loaded",
			Help: "Blocks whose index header is loaded in memory.",
		}),
		tenantsOwned: f.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_storegateway_tenants_owned",
			Help: "Tenants in object storage whose shard (store_gateway_tenant_shard_size) includes this store-gateway, at the last sync.",
		}),
		blocksOwned: f.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_storegateway_blocks_owned",
			Help: "Blocks of all tenants this store-gateway owns in the ring as of the last sync.",
		}),
		blockLoads: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_storegateway_block_loads_total",
			Help: "Blocks loaded (index header read from disk or built from object storage).",
		}),
		blockEvictions: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_storegateway_block_evictions_total",
			Help: "Loaded blocks evicted to stay under -store-gateway.max-loaded-bytes or because they left the bucket or this store-gateway's share.",
		}),
		blockLoadFailed: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_storegateway_block_load_failures_total",
			Help: "Blocks that could not be loaded; each query asking for one fails with an error naming it.",
		}),
		corruptedBlocks: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_storegateway_corrupted_block_errors_total",
			Help: "Reads that found a block corrupted or truncated (bad checksum, short object, bad format).",
		}),
		readErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_storegateway_block_read_errors_total",
			Help: "Reads of a loaded block's index or chunks that failed (object storage errors and corruption); the query fails with an error naming the block.",
		}),
		headerBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_storegateway_index_header_bytes",
			Help: "Bytes of the index headers loaded in memory.",
		}),
		headerBuildBytes: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "meridian_storegateway_index_header_size_bytes",
			Help:    "Size of each index header built or loaded.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 10),
		}),
		syncFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_storegateway_bucket_sync_failures_total",
			Help: "Syncs with object storage that could not list tenants or read a tenant's blocks.",
		}),
		syncDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "meridian_storegateway_bucket_sync_duration_seconds",
			Help:    "Time to sync the store-gateway with object storage.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8),
		}),
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_storegateway_requests_total",
			Help: "gRPC requests served by the store-gateway, by method and status (success or error).",
		}, []string{"method", "status"}),
		requestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "meridian_storegateway_request_duration_seconds",
			Help:                            "Time to serve a store-gateway gRPC request.",
			Buckets:                         prometheus.ExponentialBuckets(0.001, 4, 9),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"method"}),
	}
}
