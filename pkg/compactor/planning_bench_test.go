package compactor

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// BenchmarkPlanningManyTenants measures a compactor run over a filesystem
// bucket of many tenants with a few tiny blocks each and nothing to
// compact: the steady state of a cluster of many small tenants between two
// block ranges. It reports the bucket operations of one run.
func BenchmarkPlanningManyTenants(b *testing.B) {
	for _, tenants := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			bkt, err := filesystem.NewBucket(b.TempDir())
			require.NoError(b, err)
			writeTinyTenants(b, bkt, tenants, 3)
			reg := prometheus.NewRegistry()
			counted := objstore.WrapWithMetrics(bkt, reg, "bench")
			cfg := defaultConfig(b)
			c, err := New(cfg, counted, nil, nil, log.NewNopLogger(), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.NoError(b, err)
			c.now = func() time.Time { return time.UnixMilli(7 * hour) }
			ctx := context.Background()

			start := time.Now()
			require.NoError(b, c.RunOnce(ctx))
			firstRun := time.Since(start)
			first := opCounts(b, reg)

			b.ResetTimer()
			for range b.N {
				require.NoError(b, c.RunOnce(ctx))
			}
			b.StopTimer()
			after := opCounts(b, reg)
			for _, op := range []string{objstore.OpIter, objstore.OpGet, objstore.OpUpload} {
				b.ReportMetric((after[op]-first[op])/float64(b.N), op+"/run")
			}
			b.ReportMetric((after.total()-first.total())/float64(b.N), "bucket-ops/run")
			// After ResetTimer, which drops metrics reported before it.
			b.ReportMetric(float64(firstRun.Milliseconds()), "first-run-ms")
			b.ReportMetric(first.total(), "first-run-bucket-ops")
		})
	}
}

// writeTinyTenants writes n tenants of blocksPerTenant adjacent 2h blocks
// from time 0, with placeholder index and chunks: a run that has nothing
// to compact reads only their meta.json.
func writeTinyTenants(tb testing.TB, bkt objstore.Bucket, n, blocksPerTenant int) {
	tb.Helper()
	ctx := context.Background()
	for i := range n {
		tenant := fmt.Sprintf("tenant-%05d", i)
		for j := range blocksPerTenant {
			id := ulid.MustNew(uint64(i*blocksPerTenant+j+1), nil)
			require.NoError(tb, bkt.Upload(ctx, bucket.ChunksPrefix(tenant, id)+"000001", strings.NewReader("c")))
			require.NoError(tb, bkt.Upload(ctx, bucket.IndexName(tenant, id), strings.NewReader("i")))
			require.NoError(tb, bucket.WriteMeta(ctx, bkt, tenant, &bucket.BlockMeta{
				BlockMeta: tsdb.BlockMeta{
					ULID: id, MinTime: int64(j) * 2 * hour, MaxTime: int64(j+1) * 2 * hour, Version: 1,
					Compaction: tsdb.BlockMetaCompaction{Level: 1, Sources: []ulid.ULID{id}},
				},
				Meridian: bucket.MeridianMeta{Tenant: tenant, Ingester: "ingester-1", Source: bucket.SourceIngester},
			}))
		}
	}
}

type ops map[string]float64

func (o ops) total() float64 {
	var n float64
	for _, v := range o {
		n += v
	}
	return n
}

// opCounts reads objstore_bucket_operations_total by operation.
func opCounts(tb testing.TB, reg *prometheus.Registry) ops {
	tb.Helper()
	mfs, err := reg.Gather()
	require.NoError(tb, err)
	out := ops{}
	for _, mf := range mfs {
		if mf.GetName() != "objstore_bucket_operations_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelValue(m, "operation")] += m.GetCounter().GetValue()
		}
	}
	return out
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
