package bucket

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
)

// TenantBlocks is what a tenant has in object storage: its complete blocks
// and its bucket index (nil before the compactor wrote one).
type TenantBlocks struct {
	Blocks []tsdb.BlockMeta // sorted by MinTime, then ULID
	Index  *Index
}

// Queryable returns the blocks overlapping [mint, maxt] that readers must
// query: all of them but those the bucket index shows marked for deletion
// at least ignoreMarksDelay before now.
func (tb *TenantBlocks) Queryable(mint, maxt int64, now time.Time, ignoreMarksDelay time.Duration) []tsdb.BlockMeta {
	skip := map[ulid.ULID]struct{}{}
	if tb.Index != nil {
		for _, m := range tb.Index.DeletionMarks {
			if now.Sub(time.Unix(m.DeletionTime, 0)) >= ignoreMarksDelay {
				skip[m.ULID] = struct{}{}
			}
		}
	}
	var out []tsdb.BlockMeta
	for _, b := range tb.Blocks {
		// A block holds [MinTime, MaxTime); the query asks for [mint, maxt].
		if b.MinTime > maxt || b.MaxTime <= mint {
			continue
		}
		if _, ok := skip[b.ULID]; ok {
			continue
		}
		out = append(out, b)
	}
	return out
}

// BlockFinder discovers a tenant's complete blocks with one recursive
// listing of the tenant's prefix and reads each block's meta.json once
// (blocks are immutable). It touches only the tenants it is asked about.
// Both the store-gateway and the querier use it.
type BlockFinder struct {
	bkt objstore.BucketReader

	mu    sync.Mutex
	metas map[string]map[ulid.ULID]tsdb.BlockMeta // by tenant
}

// NewBlockFinder returns a finder over bkt, the whole bucket.
func NewBlockFinder(bkt objstore.BucketReader) *BlockFinder {
	return &BlockFinder{bkt: bkt, metas: map[string]map[ulid.ULID]tsdb.BlockMeta{}}
}

// Forget drops the metas read of the tenant's blocks, for a caller that no
// longer serves the tenant: the next Blocks reads them again.
func (f *BlockFinder) Forget(tenant string) {
	f.mu.Lock()
	delete(f.metas, tenant)
	f.mu.Unlock()
}

// Tenants lists the tenants with a prefix in the bucket.
func (f *BlockFinder) Tenants(ctx context.Context) ([]string, error) {
	tenants, err := ListTenants(ctx, f.bkt)
	if err != nil {
		return nil, fmt.Errorf("list tenants in bucket: %w", err)
	}
	return tenants, nil
}

// Blocks returns the tenant's complete blocks and bucket index. The index
// is read before the listing: a block the index shows marked was replaced
// before it was marked, so the replacement is in the listing that follows.
func (f *BlockFinder) Blocks(ctx context.Context, tenant string) (*TenantBlocks, error) {
	idx, err := ReadIndex(ctx, f.bkt, tenant)
	if err != nil {
		if !errors.Is(err, ErrIndexNotFound) {
			return nil, err
		}
		idx = nil
	}
	listed, err := ListBlocks(ctx, f.bkt, tenant)
	if err != nil {
		return nil, err
	}
	tb := &TenantBlocks{Index: idx}
	for id, objs := range listed {
		if !objs.Meta {
			continue
		}
		meta, err := f.Meta(ctx, tenant, id)
		if errors.Is(err, ErrBlockNotFound) {
			continue // deleted since the listing
		}
		if errors.Is(err, ErrCorrupted) && !idx.Has(id) {
			// meta.json is written last and non-atomically on some object
			// stores (the filesystem one): an undecodable meta.json of a
			// block the compactor never indexed is an upload in progress or
			// one killed half-way, not a complete block. Not cached, so it is
			// read again once the upload finishes.
			continue
		}
		if err != nil {
			return nil, err
		}
		tb.Blocks = append(tb.Blocks, meta)
	}
	// Forget metas of blocks gone from the bucket.
	f.mu.Lock()
	for id := range f.metas[tenant] {
		if objs, ok := listed[id]; !ok || !objs.Meta {
			delete(f.metas[tenant], id)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(tb.Blocks, func(a, b tsdb.BlockMeta) int {
		if a.MinTime != b.MinTime {
			if a.MinTime < b.MinTime {
				return -1
			}
			return 1
		}
		return a.ULID.Compare(b.ULID)
	})
	return tb, nil
}

// Meta returns the block's meta.json, read once. It returns an error
// wrapping ErrBlockNotFound when the block has none, and one wrapping
// ErrCorrupted when it does not decode or names another block.
func (f *BlockFinder) Meta(ctx context.Context, tenant string, id ulid.ULID) (tsdb.BlockMeta, error) {
	f.mu.Lock()
	m, ok := f.metas[tenant][id]
	f.mu.Unlock()
	if ok {
		return m, nil
	}
	meta, err := ReadMeta(ctx, f.bkt, tenant, id)
	if err != nil {
		return m, err
	}
	if meta.ULID != id {
		return m, fmt.Errorf("%w: %s of block %s of tenant %s names block %s", ErrCorrupted, metaFilename, id, tenant, meta.ULID)
	}
	f.mu.Lock()
	if f.metas[tenant] == nil {
		f.metas[tenant] = map[ulid.ULID]tsdb.BlockMeta{}
	}
	f.metas[tenant][id] = meta.BlockMeta
	f.mu.Unlock()
	return meta.BlockMeta, nil
}
