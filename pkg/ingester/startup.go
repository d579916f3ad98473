package ingester

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	dskittenant "github.com/grafana/dskit/tenant"
)

// closedMarkerFilename, in a tenant's TSDB directory, lists the WAL's files
// and sizes at the moment the TSDB was closed as idle, its head flushed
// into blocks. While the WAL is still exactly that, it holds nothing that
// is not in a block, so the tenant need not be opened (nor its WAL
// replayed) at start.
const closedMarkerFilename = "meridian-closed.json"

type closedMarker struct {
	WAL map[string]int64 `json:"wal"` // path under wal/ -> size in bytes
}

// walFiles lists the files of the TSDB's WAL, segments and checkpoints.
func walFiles(dir string) (map[string]int64, error) {
	root := filepath.Join(dir, "wal")
	out := map[string]int64{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		out[rel] = info.Size()
		return nil
	})
	return out, err
}

// writeClosedMarker records that everything in the tenant's WAL is in blocks.
func writeClosedMarker(dir string) error {
	files, err := walFiles(dir)
	if err != nil {
		return fmt.Errorf("list the WAL of %s: %w", dir, err)
	}
	body, err := json.Marshal(closedMarker{WAL: files})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, closedMarkerFilename), body)
}

// closedCleanly reports whether the tenant's TSDB was last closed as idle
// and its WAL has not changed since.
func closedCleanly(dir string) bool {
	body, err := os.ReadFile(filepath.Join(dir, closedMarkerFilename))
	if err != nil {
		return false
	}
	var m closedMarker
	if err := json.Unmarshal(body, &m); err != nil {
		return false
	}
	files, err := walFiles(dir)
	return err == nil && maps.Equal(files, m.WAL)
}

// needsOpenAtStart reports whether a tenant found on disk must be opened
// at start: its WAL may hold acknowledged samples that are in no block
// yet, or it has blocks to ship. The others stay closed, as idle tenants
// do, until a write or a query opens them.
func (i *Ingester) needsOpenAtStart(tenant string) (bool, error) {
	dir := filepath.Join(i.cfg.TSDBDir, tenant)
	if !closedCleanly(dir) {
		return true, nil
	}
	if i.bucket == nil {
		return false, nil
	}
	n, err := NewShipper(i.bucket, tenant, i.cfg.Lifecycler.InstanceID, dir, i.logger, i.shipperMetrics).Unshipped()
	if err != nil {
		return false, fmt.Errorf("list the blocks of tenant %s: %w", tenant, err)
	}
	return n > 0, nil
}

// openTenantsAtStart opens, in parallel, every tenant on disk that needs
// it, so that WALs replay now (acknowledged samples become queryable
// again) and leftover blocks get shipped. GOMAXPROCS tenants replay at a
// time: replay is CPU-bound, and each replay in flight holds its own
// buffers, so this also bounds the memory of the start.
func (i *Ingester) openTenantsAtStart() error {
	start := time.Now()
	entries, err := os.ReadDir(i.cfg.TSDBDir)
	if err != nil {
		return fmt.Errorf("list TSDB directory %s: %w", i.cfg.TSDBDir, err)
	}
	var tenants []string
	for _, e := range entries {
		if e.IsDir() && dskittenant.ValidTenantID(e.Name()) == nil {
			tenants = append(tenants, e.Name())
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(tenants))
	work := make(chan string)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		opened int
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tenant := range work {
				open, err := i.needsOpenAtStart(tenant)
				if err == nil && open {
					_, err = i.getOrCreateDB(tenant)
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if open {
					opened++
				}
				mu.Unlock()
			}
		}()
	}
	for _, t := range tenants {
		work <- t
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	level.Info(i.logger).Log("msg", "opened tenants found on disk", "tenants", len(tenants), "opened", opened, "left_closed", len(tenants)-opened, "workers", workers, "duration", time.Since(start))
	return nil
}
