package storegateway

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// Store loads blocks of object storage lazily, on the first query that
// asks for them, and keeps their index headers in memory under a byte
// budget, evicting the least recently used. Index headers are also
// persisted on local disk so a reload, or a restart, reads no index
// section twice from object storage.
type Store struct {
	bkt      objstore.BucketReader
	cache    Cache
	finder   *bucket.BlockFinder
	dir      string
	maxBytes int64
	logger   log.Logger
	m        *metrics

	mu          sync.Mutex
	loaded      map[blockKey]*list.Element // values are *loadedBlock
	lru         *list.List                 // front is most recently used
	loadedBytes int64
	loading     map[blockKey]*loadCall
}

type loadedBlock struct {
	key   blockKey
	blk   *bucketBlock
	bytes int64
}

type loadCall struct {
	done chan struct{}
	blk  *bucketBlock
	err  error
}

// NewStore returns a store over bkt (the whole bucket) that persists index
// headers under dir and keeps at most maxBytes of them in memory.
func NewStore(bkt objstore.BucketReader, cache Cache, dir string, maxBytes int64, logger log.Logger, m *metrics) *Store {
	return &Store{
		bkt: bkt, cache: cache, finder: bucket.NewBlockFinder(bkt), dir: dir, maxBytes: maxBytes, logger: logger, m: m,
		loaded: map[blockKey]*list.Element{}, lru: list.New(), loading: map[blockKey]*loadCall{},
	}
}

// block returns the loaded block, loading it first if needed. It returns
// an error wrapping bucket.ErrBlockNotFound when the block has no meta.json.
func (s *Store) block(ctx context.Context, tenant string, id ulid.ULID) (*bucketBlock, error) {
	k := blockKey{tenant: tenant, id: id}
	s.mu.Lock()
	if e, ok := s.loaded[k]; ok {
		s.lru.MoveToFront(e)
		blk := e.Value.(*loadedBlock).blk
		blk.acquire()
		s.mu.Unlock()
		return blk, nil
	}
	if c, ok := s.loading[k]; ok {
		s.mu.Unlock()
		select {
		case <-c.done:
			if c.err != nil {
				return nil, c.err
			}
			// Loaded meanwhile: take it from the map, where it may
			// already have been evicted.
			return s.block(ctx, tenant, id)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &loadCall{done: make(chan struct{})}
	s.loading[k] = c
	s.mu.Unlock()

	c.blk, c.err = s.load(ctx, k)

	s.mu.Lock()
	delete(s.loading, k)
	if c.err == nil {
		c.blk.acquire() // for the caller
		lb := &loadedBlock{key: k, blk: c.blk, bytes: c.blk.bytes()}
		s.loaded[k] = s.lru.PushFront(lb)
		s.loadedBytes += lb.bytes
		s.evictLocked()
	}
	s.updateGaugesLocked()
	s.mu.Unlock()
	close(c.done)
	return c.blk, c.err
}

// evictLocked drops least recently used blocks, never the most recent
// one, until the loaded index headers fit the budget. Queries still
// reading an evicted block keep it alive; nothing needs closing.
func (s *Store) evictLocked() {
	for s.loadedBytes > s.maxBytes && s.lru.Len() > 1 {
		e := s.lru.Back()
		lb := e.Value.(*loadedBlock)
		s.lru.Remove(e)
		delete(s.loaded, lb.key)
		s.loadedBytes -= lb.bytes
		lb.blk.evict()
		s.m.blockEvictions.Inc()
		level.Debug(s.logger).Log("msg", "evicted block to stay under the memory budget", "tenant", lb.key.tenant, "block", lb.key.id, "header_bytes", lb.bytes)
	}
}

func (s *Store) updateGaugesLocked() {
	s.m.blocksLoaded.Set(float64(len(s.loaded)))
	s.m.headerBytes.Set(float64(s.loadedBytes))
}

// load reads the block's meta.json and index header and opens it.
func (s *Store) load(ctx context.Context, k blockKey) (*bucketBlock, error) {
	start := time.Now()
	meta, err := s.finder.Meta(ctx, k.tenant, k.id)
	if err != nil {
		if !errors.Is(err, bucket.ErrBlockNotFound) {
			s.loadFailed(k, err)
		}
		return nil, err
	}
	dir := filepath.Join(s.dir, k.tenant, k.id.String())
	hdr, err := readIndexHeader(dir)
	fromDisk := err == nil
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			level.Warn(s.logger).Log("msg", "local index header unreadable; building it again from object storage", "tenant", k.tenant, "block", k.id, "err", err)
		}
		hdr, err = s.buildHeader(ctx, k, dir)
		if err != nil {
			s.loadFailed(k, err)
			return nil, err
		}
	}
	blk, err := s.open(ctx, k, meta, hdr)
	if err != nil && fromDisk {
		// The local copy may be stale or damaged: build it again once.
		level.Warn(s.logger).Log("msg", "block did not open with the local index header; building it again", "tenant", k.tenant, "block", k.id, "err", err)
		if hdr, err = s.buildHeader(ctx, k, dir); err == nil {
			blk, err = s.open(ctx, k, meta, hdr)
		}
	}
	if err != nil {
		s.loadFailed(k, err)
		return nil, err
	}
	s.m.blockLoads.Inc()
	s.m.headerBuildBytes.Observe(float64(hdr.bytes()))
	level.Info(s.logger).Log("msg", "loaded block", "tenant", k.tenant, "block", k.id, "header_bytes", hdr.bytes(), "from_disk", fromDisk, "duration", time.Since(start))
	return blk, nil
}

// open maps the header and opens the block on it.
func (s *Store) open(ctx context.Context, k blockKey, meta tsdb.BlockMeta, hdr *indexHeader) (*bucketBlock, error) {
	if err := hdr.mapSections(); err != nil {
		return nil, err
	}
	blk, err := openBucketBlock(ctx, s.bkt, s.cache, s.m, k.tenant, meta, hdr)
	if err != nil {
		hdr.unmap()
		return nil, err
	}
	return blk, nil
}

func (s *Store) buildHeader(ctx context.Context, k blockKey, dir string) (*indexHeader, error) {
	name := bucket.IndexName(k.tenant, k.id)
	attrs, err := s.bkt.Attributes(ctx, name)
	if err != nil {
		if s.bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("%w: block has a meta.json but no index", bucket.ErrCorrupted)
		}
		return nil, fmt.Errorf("size of index: %w", err)
	}
	// Uncached reads only (getRange): the header is built once.
	r := newObjectReader(s.bkt, name, attrs.Size, kindIndex, "", s.cache, s.m)
	hdr, err := buildIndexHeader(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := writeIndexHeader(dir, hdr); err != nil {
		// Serve from memory; the next load builds it again.
		level.Warn(s.logger).Log("msg", "could not persist index header; keeping it in memory only", "tenant", k.tenant, "block", k.id, "err", err)
	}
	return hdr, nil
}

func (s *Store) loadFailed(k blockKey, err error) {
	s.m.blockLoadFailed.Inc()
	if errors.Is(err, bucket.ErrCorrupted) {
		s.m.corruptedBlocks.Inc()
	}
	level.Error(s.logger).Log("msg", "block could not be loaded; queries asking for it fail until it is fixed or deleted", "tenant", k.tenant, "block", k.id, "err", err)
}

// retain drops loaded blocks and local index headers for which keep is
// false. tenants are the tenants whose blocks keep decides on; the local
// directories of other tenants are removed.
func (s *Store) retain(tenants map[string]struct{}, keep func(blockKey) bool) {
	s.mu.Lock()
	for k, e := range s.loaded {
		if _, ok := tenants[k.tenant]; ok && keep(k) {
			continue
		}
		lb := e.Value.(*loadedBlock)
		s.lru.Remove(e)
		delete(s.loaded, k)
		s.loadedBytes -= lb.bytes
		lb.blk.evict()
		s.m.blockEvictions.Inc()
	}
	s.updateGaugesLocked()
	s.mu.Unlock()

	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, te := range entries {
		tdir := filepath.Join(s.dir, te.Name())
		if _, ok := tenants[te.Name()]; !ok {
			_ = os.RemoveAll(tdir)
			continue
		}
		blocks, err := os.ReadDir(tdir)
		if err != nil {
			continue
		}
		for _, be := range blocks {
			id, err := ulid.ParseStrict(be.Name())
			if err != nil || !keep(blockKey{tenant: te.Name(), id: id}) {
				_ = os.RemoveAll(filepath.Join(tdir, be.Name()))
			}
		}
	}
}

// LoadedBytes returns the bytes of index headers held in memory.
func (s *Store) LoadedBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadedBytes
}

// LoadedBlocks returns how many blocks are loaded.
func (s *Store) LoadedBlocks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.loaded)
}
