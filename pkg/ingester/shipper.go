package ingester

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// ShippedFilename is the shipper's record, in the tenant's TSDB directory,
// of the blocks already in object storage.
const (
	ShippedFilename     = "meridian-shipped.json"
	shippedFileVersion1 = 1
)

// ShipperMetrics are shared by the shippers of all tenants of an ingester.
type ShipperMetrics struct {
	uploads            prometheus.Counter
	uploadFailures     prometheus.Counter
	lastSuccessfulTime prometheus.Gauge
	uploadDuration     prometheus.Histogram
}

// NewShipperMetrics registers the shipper metrics with reg.
func NewShipperMetrics(reg prometheus.Registerer) *ShipperMetrics {
	f := promauto.With(reg)
	return &ShipperMetrics{
		uploads: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_ingester_shipper_uploads_total",
			Help: "Blocks uploaded to object storage by the shipper.",
		}),
		uploadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "meridian_ingester_shipper_upload_failures_total",
			Help: "Block uploads to object storage that did not complete; they are retried on the next sync.",
		}),
		lastSuccessfulTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_ingester_shipper_last_successful_upload_timestamp_seconds",
			Help: "Unix time of the last block uploaded to object storage.",
		}),
		uploadDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                            "meridian_ingester_shipper_upload_duration_seconds",
			Help:                            "Time to upload one block to object storage, successful or not.",
			Buckets:                         prometheus.ExponentialBuckets(0.01, 4, 8),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}),
	}
}

// shippedFile is the on-disk record of the blocks already in object storage.
type shippedFile struct {
	Version int `json:"version"`
	// Shipped maps a block ULID to the Unix time (seconds) it was shipped.
	Shipped map[ulid.ULID]int64 `json:"shipped"`
}

// Shipper uploads a tenant's complete TSDB blocks to object storage.
type Shipper struct {
	bkt        objstore.Bucket
	tenant     string
	ingesterID string
	dir        string
	logger     log.Logger
	metrics    *ShipperMetrics
	now        func() time.Time

	syncMu sync.Mutex // one Sync at a time.

	mu      sync.RWMutex
	shipped map[ulid.ULID]int64
}

// NewShipper returns a Shipper of the blocks in tsdbDir to the tenant's
// prefix of bkt, the whole bucket. It reads which blocks were shipped
// before from <tsdbDir>/meridian-shipped.json.
func NewShipper(bkt objstore.Bucket, tenant, ingesterID, tsdbDir string, logger log.Logger, m *ShipperMetrics) *Shipper {
	s := &Shipper{
		bkt:        bkt,
		tenant:     tenant,
		ingesterID: ingesterID,
		dir:        tsdbDir,
		logger:     log.With(logger, "component", "shipper", "tenant", tenant),
		metrics:    m,
		now:        time.Now,
		shipped:    map[ulid.ULID]int64{},
	}
	shipped, err := readShippedFile(filepath.Join(tsdbDir, ShippedFilename))
	switch {
	case err == nil:
		s.shipped = shipped
	case errors.Is(err, os.ErrNotExist):
	default:
		level.Warn(s.logger).Log("msg", "ignoring unreadable shipped-blocks file; blocks already in the bucket are detected by their meta.json and not uploaded again", "file", ShippedFilename, "err", err)
	}
	return s
}

// IsShipped reports whether the block is known to be complete in object storage.
func (s *Shipper) IsShipped(id ulid.ULID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.shipped[id]
	return ok
}

// Sync uploads every complete local block not shipped yet: chunks and index
// first, meta.json last, so readers never see a meta.json without the data.
// It returns how many blocks it uploaded. A block that does not upload is
// retried on the next Sync; the others still go.
func (s *Shipper) Sync(ctx context.Context) (int, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()

	local, err := s.localBlockIDs()
	if err != nil {
		return 0, fmt.Errorf("list local blocks of tenant %s: %w", s.tenant, err)
	}
	metas, err := s.unshippedMetas(local)
	if err != nil {
		return 0, fmt.Errorf("list local blocks of tenant %s: %w", s.tenant, err)
	}

	s.mu.Lock()
	pruned := false
	for id := range s.shipped {
		if _, ok := local[id]; !ok {
			// The block left the local disk; nobody asks about it any more.
			delete(s.shipped, id)
			pruned = true
		}
	}
	s.mu.Unlock()

	uploaded := 0
	var errs []error
	for _, meta := range metas {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}

		// A lost or stale shipped-blocks file must not cause re-uploads:
		// a meta.json in the bucket means an earlier upload completed.
		done, err := s.bkt.Exists(ctx, bucket.MetaName(s.tenant, meta.ULID))
		if err != nil {
			errs = append(errs, fmt.Errorf("check block %s in bucket: %w", meta.ULID, err))
			continue
		}
		if !done {
			if err := s.upload(ctx, meta); err != nil {
				errs = append(errs, err)
				continue
			}
			uploaded++
		}

		s.mu.Lock()
		s.shipped[meta.ULID] = s.now().Unix()
		s.mu.Unlock()
		// Record progress block by block so a crash re-uploads at most one block.
		if err := s.writeShippedFile(); err != nil {
			errs = append(errs, err)
		}
		pruned = false // Written along.
	}
	if pruned {
		if err := s.writeShippedFile(); err != nil {
			errs = append(errs, err)
		}
	}
	return uploaded, errors.Join(errs...)
}

// upload copies one block into the bucket, meta.json last.
func (s *Shipper) upload(ctx context.Context, meta tsdb.BlockMeta) (err error) {
	id := meta.ULID.String()
	blockDir := filepath.Join(s.dir, id)
	start := s.now()
	defer func() {
		s.metrics.uploadDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			s.metrics.uploadFailures.Inc()
			level.Warn(s.logger).Log("msg", "block upload incomplete, retrying on next sync", "block", id, "err", err)
			return
		}
		s.metrics.uploads.Inc()
		s.metrics.lastSuccessfulTime.Set(float64(s.now().UnixNano()) / 1e9)
		level.Info(s.logger).Log("msg", "uploaded block", "block", id, "mint", meta.MinTime, "maxt", meta.MaxTime, "duration", time.Since(start))
	}()

	return bucket.UploadBlock(ctx, s.logger, s.bkt, s.tenant, blockDir, &bucket.BlockMeta{
		BlockMeta: meta,
		Meridian: bucket.MeridianMeta{
			Tenant:   s.tenant,
			Ingester: s.ingesterID,
			Source:   bucket.SourceIngester,
		},
	})
}

// Unshipped counts the complete local blocks not known to be in object
// storage.
func (s *Shipper) Unshipped() (int, error) {
	local, err := s.localBlockIDs()
	if err != nil {
		return 0, err
	}
	metas, err := s.unshippedMetas(local)
	return len(metas), err
}

// localBlockIDs returns the block directories in the TSDB directory.
// Directories that are not a ULID (wal, chunks_head,
// *.tmp-for-creation, ...) are skipped.
func (s *Shipper) localBlockIDs() (map[ulid.ULID]struct{}, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	ids := map[ulid.ULID]struct{}{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if id, err := ulid.ParseStrict(e.Name()); err == nil {
			ids[id] = struct{}{}
		}
	}
	return ids, nil
}

// unshippedMetas returns the metas of the complete blocks among local that
// are not shipped yet, oldest first. Shipped blocks are not read: a tenant
// keeps its blocks for the retention period, and every ship interval would
// read them all again. Blocks without meta.json are still being written.
func (s *Shipper) unshippedMetas(local map[ulid.ULID]struct{}) ([]tsdb.BlockMeta, error) {
	var metas []tsdb.BlockMeta
	for id := range local {
		if s.IsShipped(id) {
			continue
		}
		meta, err := bucket.ReadLocalMeta(filepath.Join(s.dir, id.String()))
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // Still being written.
		case errors.Is(err, bucket.ErrCorrupted):
			level.Warn(s.logger).Log("msg", "skipping block with unreadable meta.json", "block", id, "err", err)
			continue
		case err != nil:
			return nil, fmt.Errorf("read meta.json of block %s: %w", id, err)
		}
		if meta.ULID != id {
			level.Warn(s.logger).Log("msg", "skipping block whose meta.json names another block", "block", id, "meta_ulid", meta.ULID)
			continue
		}
		metas = append(metas, meta)
	}
	slices.SortFunc(metas, func(a, b tsdb.BlockMeta) int { return a.ULID.Compare(b.ULID) })
	return metas, nil
}

func readShippedFile(name string) (map[ulid.ULID]int64, error) {
	body, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var f shippedFile
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	if f.Version != shippedFileVersion1 {
		return nil, fmt.Errorf("unsupported version %d of %s", f.Version, name)
	}
	if f.Shipped == nil {
		f.Shipped = map[ulid.ULID]int64{}
	}
	return f.Shipped, nil
}

// writeShippedFile replaces the shipped-blocks file atomically: write to a
// temporary file, sync it, rename it over the old one, sync the directory.
func (s *Shipper) writeShippedFile() error {
	s.mu.RLock()
	body, err := json.MarshalIndent(shippedFile{Version: shippedFileVersion1, Shipped: s.shipped}, "", "\t")
	s.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("encode %s: %w", ShippedFilename, err)
	}
	name := filepath.Join(s.dir, ShippedFilename)
	if err := writeFileAtomic(name, body); err != nil {
		return fmt.Errorf("write %s of tenant %s: %w", ShippedFilename, s.tenant, err)
	}
	return nil
}

func writeFileAtomic(name string, body []byte) (err error) {
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(body); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
