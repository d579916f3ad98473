// Command sgbench measures reads from object storage through the
// store-gateway: it writes D days of N series as 24h blocks (the shape the
// compactor leaves) into a filesystem bucket with Prometheus' block
// writer, then queries them through a store-gateway Store in a separate
// run, and reports latency, bytes fetched from object storage, the
// process' peak RSS and bytes per sample. See docs/benchmarks.md.
//
//	sgbench -generate -dir /tmp/sgbench -series 10000 -days 7
//	sgbench -query -dir /tmp/sgbench
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/storage/bucket"
	"github.com/meridianhq/meridian/pkg/storegateway"
	"github.com/prometheus/prometheus/prompb"
)

const tenant = "bench"

func main() {
	var (
		dir      = flag.String("dir", "/tmp/sgbench", "Work directory: bucket/ and store-gateway/ under it.")
		generate = flag.Bool("generate", false, "Write the blocks into the bucket.")
		query    = flag.Bool("query", false, "Query the blocks through a store-gateway.")
		series   = flag.Int("series", 10000, "Series to write.")
		days     = flag.Int("days", 7, "Days of data, one 24h block each.")
		interval = flag.Duration("interval", 30*time.Second, "Scrape interval of the written samples.")
		cacheMB  = flag.Int("cache-mb", 256, "In-memory page cache size.")
		values   = flag.String("values", "realistic", "Sample values: realistic (counters at a steady rate, gauges that mostly stay put) or random (random increments and full-precision random walks: the worst case for compression).")
	)
	flag.Parse()
	if err := run(*dir, *generate, *query, *series, *days, *interval, *cacheMB, *values == "random"); err != nil {
		fmt.Fprintln(os.Stderr, "sgbench:", err)
		os.Exit(1)
	}
}

func run(dir string, generate, query bool, nSeries, days int, interval time.Duration, cacheMB int, random bool) error {
	bkt, err := filesystem.NewBucket(filepath.Join(dir, "bucket"))
	if err != nil {
		return err
	}
	if generate {
		if err := gen(dir, bkt, nSeries, days, interval, random); err != nil {
			return err
		}
	}
	if query {
		return runQueries(dir, bkt, cacheMB)
	}
	return nil
}

// gen writes one 24h block per day ending at midnight today (UTC).
func gen(dir string, bkt objstore.Bucket, nSeries, days int, interval time.Duration, random bool) error {
	ctx := context.Background()
	end := time.Now().UTC().Truncate(24 * time.Hour)
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]float64, nSeries)
	rates := make([]float64, nSeries) // per-second rate of each counter
	for s := range rates {
		rates[s] = float64(1 + rng.IntN(50))
	}
	lsets := make([]labels.Labels, nSeries)
	for s := range lsets {
		kind := "counter"
		if s%2 == 1 {
			kind = "gauge"
			vals[s] = 50 + rng.Float64()*50
		}
		lsets[s] = labels.FromStrings("__name__", "bench_metric_"+kind, "job", fmt.Sprintf("job-%d", s%20),
			"instance", fmt.Sprintf("host-%04d:9100", s/20), "series", fmt.Sprint(s))
	}
	var samples, bytes int64
	for d := 0; d < days; d++ {
		from := start.Add(time.Duration(d) * 24 * time.Hour)
		tmp := filepath.Join(dir, "gen")
		_ = os.RemoveAll(tmp)
		w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), tmp, (24 * time.Hour).Milliseconds())
		if err != nil {
			return err
		}
		for ts := from; ts.Before(from.Add(24 * time.Hour)); ts = ts.Add(interval) {
			app := w.Appender(ctx)
			for s := range lsets {
				switch {
				case random && s%2 == 0:
					vals[s] += float64(rng.IntN(100))
				case random:
					vals[s] = max(0, vals[s]+rng.NormFloat64())
				case s%2 == 0:
					// A steady rate with a little jitter, in whole events.
					vals[s] += float64(int(rates[s] * interval.Seconds() * (0.9 + 0.2*rng.Float64())))
				case rng.IntN(10) == 0:
					// Gauges change now and then, to a value with two decimals.
					vals[s] = float64(int(max(0, vals[s]+rng.NormFloat64()*5)*100)) / 100
				}
				if _, err := app.Append(0, lsets[s], ts.UnixMilli(), vals[s]); err != nil {
					return err
				}
				samples++
			}
			if err := app.Commit(); err != nil {
				return err
			}
		}
		id, err := w.Flush(ctx)
		if err != nil {
			return err
		}
		_ = w.Close()
		blockDir := filepath.Join(tmp, id.String())
		if err := addMeridianMeta(blockDir); err != nil {
			return err
		}
		n, err := dirSize(blockDir)
		if err != nil {
			return err
		}
		bytes += n
		if err := objstore.UploadDir(ctx, log.NewNopLogger(), bkt, blockDir, tenant+"/"+id.String()); err != nil {
			return err
		}
		_ = os.RemoveAll(tmp)
		fmt.Printf("block %s: day %d, %d bytes\n", id, d+1, n)
	}
	fmt.Printf("generated %d series x %d days every %s: %d samples, %d bytes in blocks, %.3f bytes/sample\n",
		nSeries, days, interval, samples, bytes, float64(bytes)/float64(samples))
	return nil
}

func addMeridianMeta(blockDir string) error {
	meta, err := bucket.ReadLocalMeta(blockDir)
	if err != nil {
		return err
	}
	m := bucket.BlockMeta{BlockMeta: meta, Meridian: bucket.MeridianMeta{Tenant: tenant, Source: bucket.SourceCompactor}}
	out, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(bucket.LocalMetaPath(blockDir), out, 0o644)
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	return n, err
}

func runQueries(dir string, bkt objstore.Bucket, cacheMB int) error {
	ctx := context.Background()
	finder := bucket.NewBlockFinder(bkt)
	tb, err := finder.Blocks(ctx, tenant)
	if err != nil {
		return err
	}
	if len(tb.Blocks) == 0 {
		return fmt.Errorf("no blocks in %s: run with -generate first", dir)
	}
	var ids []string
	mint, maxt := tb.Blocks[0].MinTime, tb.Blocks[0].MaxTime
	for _, b := range tb.Blocks {
		ids = append(ids, b.ULID.String())
		mint, maxt = min(mint, b.MinTime), max(maxt, b.MaxTime)
	}
	hdrDir := filepath.Join(dir, "store-gateway")
	_ = os.RemoveAll(hdrDir)
	reg := prometheus.NewRegistry()
	cfg := storegateway.Config{}
	fs := flag.NewFlagSet("sg", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	cfg.DataDir = hdrDir
	_ = fs.Set("store-gateway.cache.inmemory.max-size-bytes", fmt.Sprint(cacheMB<<20))
	g, err := storegateway.New(cfg, bkt, kv.Config{}, nil, nil, log.NewNopLogger(), reg)
	if err != nil {
		return err
	}
	st := g.Store()

	queries := []struct {
		name string
		ms   []*labels.Matcher
	}{
		{"all 10k series, 7d", []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", "bench_metric_.*")}},
		{"one job (1/20 of the series), 7d", []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", "bench_metric_.*"), labels.MustNewMatcher(labels.MatchEqual, "job", "job-7")}},
		{"one series, 7d", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "series", "4242")}},
	}
	fmt.Printf("%d blocks, %s to %s\n", len(ids), time.UnixMilli(mint).UTC().Format(time.RFC3339), time.UnixMilli(maxt).UTC().Format(time.RFC3339))
	for _, q := range queries {
		for _, pass := range []string{"cold", "warm"} {
			before := fetched(reg)
			start := time.Now()
			nSeries, nSamples, err := seriesQuery(ctx, st, mint, maxt, ids, q.ms)
			if err != nil {
				return err
			}
			fmt.Printf("%-34s %s: %8.3fs  %6d series %10d samples  %12d bytes fetched from object storage\n",
				q.name, pass, time.Since(start).Seconds(), nSeries, nSamples, int64(fetched(reg)-before))
		}
	}
	fmt.Printf("index headers in memory: %d bytes; peak RSS %s\n", st.LoadedBytes(), procStatus("VmHWM"))
	return nil
}

func seriesQuery(ctx context.Context, st *storegateway.Store, mint, maxt int64, ids []string, ms []*labels.Matcher) (int, int, error) {
	var pms []prompb.LabelMatcher
	for _, m := range ms {
		t := prompb.LabelMatcher_EQ
		if m.Type == labels.MatchRegexp {
			t = prompb.LabelMatcher_RE
		}
		pms = append(pms, prompb.LabelMatcher{Type: t, Name: m.Name, Value: m.Value})
	}
	nSeries, nSamples := 0, 0
	err := st.Series(ctx, tenant, &meridianpb.StoreSeriesRequest{MinTimeMs: mint, MaxTimeMs: maxt, Matchers: pms, BlockIds: ids}, func(r *meridianpb.StoreSeriesResponse) error {
		for _, s := range r.Series {
			nSeries++
			for _, c := range s.Chunks {
				chk, err := chunkenc.FromData(chunkenc.EncXOR, c.Data)
				if err != nil {
					return err
				}
				nSamples += chk.NumSamples()
			}
		}
		return nil
	})
	return nSeries, nSamples, err
}

func fetched(g prometheus.Gatherer) float64 {
	mfs, _ := g.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "meridian_storegateway_bucket_bytes_fetched_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += counter(m)
		}
	}
	return sum
}

func counter(m *dto.Metric) float64 { return m.GetCounter().GetValue() }

func procStatus(key string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
