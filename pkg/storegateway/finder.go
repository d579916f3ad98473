package storegateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/compactor"
	"github.com/meridianhq/meridian/pkg/storage"
)

// ErrBlockNotFound is returned for a block without a meta.json: not
// uploaded completely yet, or deleted.
var ErrBlockNotFound = errors.New("block not found in object storage")

// TenantBlocks is what a tenant has in object storage: its complete blocks
// and its bucket index (nil before the compactor wrote one).
type TenantBlocks struct {
	Blocks []tsdb.BlockMeta // sorted by MinTime, then ULID
	Index  *compactor.BucketIndex
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
// listing and reads each block's meta.json once (blocks are immutable).
// Both the store-gateway and the querier use it.
type BlockFinder struct {
	bkt objstore.BucketReader

	mu    sync.Mutex
	metas map[blockKey]tsdb.BlockMeta
}

// NewBlockFinder returns a finder over bkt, the whole bucket.
func NewBlockFinder(bkt objstore.BucketReader) *BlockFinder {
	return &BlockFinder{bkt: bkt, metas: map[blockKey]tsdb.BlockMeta{}}
}

// Tenants lists the tenants with a prefix in the bucket.
func (f *BlockFinder) Tenants(ctx context.Context) ([]string, error) {
	var tenants []string
	err := f.bkt.Iter(ctx, "", func(name string) error {
		t, ok := strings.CutSuffix(name, objstore.DirDelim)
		if ok && t != "" && t != "." && t != ".." && !strings.ContainsAny(t, `/\`) {
			tenants = append(tenants, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants in bucket: %w", err)
	}
	return tenants, nil
}

// Blocks returns the tenant's complete blocks and bucket index. The index
// is read before the listing: a block the index shows marked was replaced
// before it was marked, so the replacement is in the listing that follows.
func (f *BlockFinder) Blocks(ctx context.Context, tenant string) (*TenantBlocks, error) {
	idx, err := compactor.ReadBucketIndex(ctx, f.bkt, tenant)
	if err != nil {
		if !errors.Is(err, compactor.ErrBucketIndexNotFound) {
			return nil, err
		}
		idx = nil
	}
	var ids []ulid.ULID
	prefix := tenant + objstore.DirDelim
	err = f.bkt.Iter(ctx, prefix, func(name string) error {
		dir, file, ok := strings.Cut(strings.TrimPrefix(name, prefix), objstore.DirDelim)
		if !ok || file != "meta.json" {
			return nil
		}
		if id, err := ulid.ParseStrict(dir); err == nil {
			ids = append(ids, id)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return nil, fmt.Errorf("list blocks of tenant %s: %w", tenant, err)
	}
	tb := &TenantBlocks{Index: idx}
	live := make(map[blockKey]struct{}, len(ids))
	for _, id := range ids {
		k := blockKey{tenant: tenant, id: id}
		live[k] = struct{}{}
		meta, err := f.Meta(ctx, tenant, id)
		if errors.Is(err, ErrBlockNotFound) {
			continue // deleted since the listing
		}
		if errors.Is(err, ErrCorrupted) && !indexed(idx, id) {
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
	for k := range f.metas {
		if _, ok := live[k]; !ok && k.tenant == tenant {
			delete(f.metas, k)
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

// indexed reports whether the bucket index lists block id.
func indexed(idx *compactor.BucketIndex, id ulid.ULID) bool {
	if idx == nil {
		return false
	}
	for _, b := range idx.Blocks {
		if b.ULID == id {
			return true
		}
	}
	return false
}

// Meta returns the block's meta.json, read once. It returns an error
// wrapping ErrBlockNotFound when the block has none.
func (f *BlockFinder) Meta(ctx context.Context, tenant string, id ulid.ULID) (tsdb.BlockMeta, error) {
	k := blockKey{tenant: tenant, id: id}
	f.mu.Lock()
	m, ok := f.metas[k]
	f.mu.Unlock()
	if ok {
		return m, nil
	}
	name := path.Join(tenant, id.String(), "meta.json")
	rc, err := f.bkt.Get(ctx, name)
	if err != nil {
		if f.bkt.IsObjNotFoundErr(err) {
			return m, fmt.Errorf("block %s of tenant %s: %w", id, tenant, ErrBlockNotFound)
		}
		return m, fmt.Errorf("read meta.json of block %s of tenant %s: %w", id, tenant, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return m, fmt.Errorf("read meta.json of block %s of tenant %s: %w", id, tenant, err)
	}
	var meta storage.BlockMeta
	if err := json.Unmarshal(b, &meta); err != nil {
		return m, fmt.Errorf("%w: decode meta.json of block %s of tenant %s: %v", ErrCorrupted, id, tenant, err)
	}
	if meta.ULID != id {
		return m, fmt.Errorf("%w: meta.json of block %s of tenant %s names block %s", ErrCorrupted, id, tenant, meta.ULID)
	}
	f.mu.Lock()
	f.metas[k] = meta.BlockMeta
	f.mu.Unlock()
	return meta.BlockMeta, nil
}
