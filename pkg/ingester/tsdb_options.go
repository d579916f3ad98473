package ingester

import (
	"fmt"
	"io/fs"
	"math/bits"
	"path/filepath"

	"github.com/go-kit/log/level"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/fileutil"
)

// A tenant's TSDB is sized to the tenant: with Prometheus's defaults every
// TSDB costs about 8 MiB whatever its size (16 384 stripes of series maps
// and locks, and a 4 MiB head chunk write buffer), so 1 000 tenants of 100
// series cost 20 times the memory of one tenant of 100 000 series.
// BenchmarkTenants measures it; docs/architecture.md has the figures.
const (
	minStripeSize = 64
	maxStripeSize = tsdb.DefaultStripeSize
	// seriesPerStripe aims a little above Prometheus's own default for a
	// 100 000-series head (6 series per stripe): a stripe costs about
	// 240 bytes, so this is under 2 % of what the series cost.
	seriesPerStripe = 16
	// walBytesPerSeries under-estimates what a series costs its WAL (its
	// labels, and at one sample per 15-60 s the samples of the 2-3 h a
	// WAL holds), so the series count estimated from the WAL errs on the
	// big side, which costs memory, not throughput.
	walBytesPerSeries = 1024
	// replayFanOutBytes is the WAL size from which its replay is spread
	// over GOMAXPROCS goroutines (Prometheus's default).
	replayFanOutBytes = 64 << 20
)

// sizeTSDBOptions sizes the options that cost memory per TSDB to the
// tenant, from the WAL it left on disk (a tenant seen for the first time
// starts small; a big one gets its stripes when it is reopened: after a
// restart or an idle close).
func sizeTSDBOptions(opts *tsdb.Options, dir string) {
	wal := walBytes(dir)
	opts.StripeSize = stripeSizeFor(wal)
	if wal < replayFanOutBytes {
		// A small WAL replays faster in one goroutine than fanned out to
		// GOMAXPROCS, each with its channels; at start tenants already
		// open GOMAXPROCS at a time.
		opts.WALReplayConcurrency = 1
	}
	// The buffer is flushed to the page cache when full: 64 KiB still
	// amortises the write over hundreds of chunks.
	opts.HeadChunksWriteBufferSize = chunks.MinWriteBufferSize
	// The ingester holds one lock for its whole TSDB directory (see
	// lockTSDBDir): a lock file per tenant would cost a descriptor each.
	opts.NoLockfile = true
}

// stripeSizeFor returns the number of series stripes for a tenant whose
// WAL is walBytes long: a power of two between minStripeSize and
// maxStripeSize.
func stripeSizeFor(walBytes int64) int {
	want := walBytes / walBytesPerSeries / seriesPerStripe
	if want <= minStripeSize {
		return minStripeSize
	}
	if want >= maxStripeSize {
		return maxStripeSize
	}
	return 1 << bits.Len64(uint64(want-1)) // next power of two
}

// walBytes sums the sizes of the files of the TSDB's WAL (segments and
// checkpoint); 0 when it has none.
func walBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(filepath.Join(dir, "wal"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a file that vanished or cannot be read counts as empty
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}

// dirLockFilename is the lock file, in the TSDB directory, that keeps two
// processes from opening the same tenants' TSDBs.
const dirLockFilename = "meridian-ingester.lock"

// lockTSDBDir takes the directory's lock in place of the per-TSDB lock
// files (NoLockfile): one descriptor instead of one per tenant.
func (i *Ingester) lockTSDBDir() error {
	path := filepath.Join(i.cfg.TSDBDir, dirLockFilename)
	r, _, err := fileutil.Flock(path)
	if err != nil {
		return fmt.Errorf("lock TSDB directory %s (is another ingester using it? each needs its own -ingester.tsdb-dir): %w", i.cfg.TSDBDir, err)
	}
	i.dirLock = r
	return nil
}

func (i *Ingester) unlockTSDBDir() {
	if i.dirLock == nil {
		return
	}
	if err := i.dirLock.Release(); err != nil {
		level.Warn(i.logger).Log("msg", "releasing the TSDB directory lock", "dir", i.cfg.TSDBDir, "err", err)
	}
	i.dirLock = nil
}
