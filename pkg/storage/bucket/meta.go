package bucket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
)

// Values of MeridianMeta.Source.
const (
	SourceIngester  = "ingester"
	SourceCompactor = "compactor"
)

// MeridianMeta is the Meridian section of a block's meta.json: who the
// block belongs to and who wrote it.
type MeridianMeta struct {
	Tenant   string `json:"tenant"`
	Ingester string `json:"ingester,omitempty"` // set by ingesters, not the compactor
	Source   string `json:"source"`             // SourceIngester or SourceCompactor
}

// BlockMeta is a block's meta.json in object storage: Prometheus'
// tsdb.BlockMeta plus the "meridian" section. Ingesters write it when they
// ship a block, the compactor when it uploads one, and both read it back.
type BlockMeta struct {
	tsdb.BlockMeta
	Meridian MeridianMeta `json:"meridian"`
}

const deletionMarkVersion1 = 1

// DeletionMark is <tenant>/<ULID>/deletion-mark.json: the block is
// deleted once DeletionTime is older than the deletion delay.
type DeletionMark struct {
	ID ulid.ULID `json:"id"`
	// DeletionTime is the Unix time, in seconds, the block was marked.
	DeletionTime int64 `json:"deletion_time"`
	Version      int   `json:"version"`
}

// NewDeletionMark returns the mark of block id marked at deletionTime
// (Unix seconds).
func NewDeletionMark(id ulid.ULID, deletionTime int64) *DeletionMark {
	return &DeletionMark{ID: id, DeletionTime: deletionTime, Version: deletionMarkVersion1}
}

// TenantDeletionMark is <tenant>/tenant-deletion-mark.json: every object
// of the tenant is to be deleted.
type TenantDeletionMark struct {
	// DeletionTime is the Unix time, in seconds, deletion was requested.
	DeletionTime int64 `json:"deletion_time"`
	// FinishedTime is the Unix time, in seconds, the compactor first found
	// no block left; 0 while blocks remain.
	FinishedTime int64 `json:"finished_time,omitempty"`
}

// ReadMeta reads the block's meta.json. A missing one is an error wrapping
// ErrBlockNotFound, one that does not decode an error wrapping
// ErrCorrupted. The caller checks that it names the block.
func ReadMeta(ctx context.Context, bkt objstore.BucketReader, tenant string, id ulid.ULID) (*BlockMeta, error) {
	var m BlockMeta
	found, err := readJSON(ctx, bkt, MetaName(tenant, id), &m)
	var de *decodeError
	switch {
	case errors.As(err, &de):
		return nil, fmt.Errorf("%w: decode %s of block %s of tenant %s: %v", ErrCorrupted, metaFilename, id, tenant, de.err)
	case err != nil:
		return nil, fmt.Errorf("read %s of block %s of tenant %s: %w", metaFilename, id, tenant, err)
	case !found:
		return nil, fmt.Errorf("block %s of tenant %s: %w", id, tenant, ErrBlockNotFound)
	}
	return &m, nil
}

// WriteMeta uploads the block's meta.json.
func WriteMeta(ctx context.Context, bkt objstore.Bucket, tenant string, m *BlockMeta) error {
	return writeJSON(ctx, bkt, MetaName(tenant, m.ULID), m)
}

// ReadDeletionMark reads the block's deletion mark; found is false when it
// has none. One that does not decode is an error wrapping ErrCorrupted;
// a failed read is returned as it is.
func ReadDeletionMark(ctx context.Context, bkt objstore.BucketReader, tenant string, id ulid.ULID) (mk *DeletionMark, found bool, err error) {
	mk = &DeletionMark{}
	found, err = readJSON(ctx, bkt, DeletionMarkName(tenant, id), mk)
	return mk, found, err
}

// WriteDeletionMark uploads the block's deletion mark.
func WriteDeletionMark(ctx context.Context, bkt objstore.Bucket, tenant string, mk *DeletionMark) error {
	return writeJSON(ctx, bkt, DeletionMarkName(tenant, mk.ID), mk)
}

// ReadTenantDeletionMark reads the tenant's deletion mark; found is false
// when it has none.
func ReadTenantDeletionMark(ctx context.Context, bkt objstore.BucketReader, tenant string) (mk *TenantDeletionMark, found bool, err error) {
	mk = &TenantDeletionMark{}
	found, err = readJSON(ctx, bkt, TenantDeletionMarkName(tenant), mk)
	return mk, found, err
}

// WriteTenantDeletionMark uploads the tenant's deletion mark.
func WriteTenantDeletionMark(ctx context.Context, bkt objstore.Bucket, tenant string, mk *TenantDeletionMark) error {
	return writeJSON(ctx, bkt, TenantDeletionMarkName(tenant), mk)
}

// readJSON decodes the object name into v; found is false when there is
// no such object. Bytes that do not decode are a *decodeError, which
// wraps ErrCorrupted; failed reads are returned as they are.
func readJSON(ctx context.Context, bkt objstore.BucketReader, name string, v any) (found bool, err error) {
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return false, nil
		}
		return false, err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, maxJSONSize))
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return false, &decodeError{name: name, err: err}
	}
	return true, nil
}

// decodeError is an object that does not decode: the object is corrupted.
type decodeError struct {
	name string
	err  error
}

func (e *decodeError) Error() string   { return "decode " + e.name + ": " + e.err.Error() }
func (e *decodeError) Unwrap() []error { return []error{ErrCorrupted, e.err} }

func writeJSON(ctx context.Context, bkt objstore.Bucket, name string, v any) error {
	body, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if err := bkt.Upload(ctx, name, bytes.NewReader(body)); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	return nil
}

// ReadLocalMeta reads the meta.json of a local TSDB block directory. A
// missing one is an error wrapping os.ErrNotExist, one that does not
// decode an error wrapping ErrCorrupted.
func ReadLocalMeta(dir string) (tsdb.BlockMeta, error) {
	var m tsdb.BlockMeta
	body, err := os.ReadFile(LocalMetaPath(dir))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return m, &decodeError{name: LocalMetaPath(dir), err: err}
	}
	return m, nil
}

// UploadBlock copies the local block in dir to the tenant's prefix:
// chunks, index, then meta (whose ULID names the block) last, so that
// readers never see a meta.json without the data.
func UploadBlock(ctx context.Context, logger log.Logger, bkt objstore.Bucket, tenant, dir string, meta *BlockMeta) error {
	id := meta.ULID
	if err := objstore.UploadDir(ctx, logger, bkt, LocalChunksDir(dir), blockObject(tenant, id, chunksDirname)); err != nil {
		return fmt.Errorf("upload chunks of block %s: %w", id, err)
	}
	if err := objstore.UploadFile(ctx, logger, bkt, LocalIndexPath(dir), IndexName(tenant, id)); err != nil {
		return fmt.Errorf("upload index of block %s: %w", id, err)
	}
	if err := WriteMeta(ctx, bkt, tenant, meta); err != nil {
		return fmt.Errorf("upload %s of block %s: %w", metaFilename, id, err)
	}
	return nil
}

// DownloadBlock copies the block of the bucket into the local directory
// dir, which it creates.
func DownloadBlock(ctx context.Context, logger log.Logger, bkt objstore.BucketReader, tenant string, id ulid.ULID, dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for _, name := range []string{metaFilename, indexFilename} {
		if err := objstore.DownloadFile(ctx, logger, bkt, blockObject(tenant, id, name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("download %s: %w", name, err)
		}
	}
	chunks := blockObject(tenant, id, chunksDirname)
	if err := objstore.DownloadDir(ctx, logger, bkt, chunks, chunks, LocalChunksDir(dir)); err != nil {
		return fmt.Errorf("download chunks: %w", err)
	}
	return nil
}

// DeleteBlock deletes a block: meta.json first, so that a half-deleted
// block is never read as complete, then its other objects, then its
// deletion mark, so that a block whose deletion was interrupted is still
// marked and its deletion is finished by the next attempt. Objects already
// gone are no error.
func DeleteBlock(ctx context.Context, bkt objstore.Bucket, tenant string, id ulid.ULID) error {
	if err := DeleteObject(ctx, bkt, MetaName(tenant, id)); err != nil {
		return fmt.Errorf("delete block %s: %w", id, err)
	}
	markName := DeletionMarkName(tenant, id)
	var names []string
	err := bkt.Iter(ctx, BlockPrefix(tenant, id), func(name string) error {
		if name != markName {
			names = append(names, name)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("list objects of block %s: %w", id, err)
	}
	for _, name := range names {
		if err := DeleteObject(ctx, bkt, name); err != nil {
			return fmt.Errorf("delete block %s: %w", id, err)
		}
	}
	if err := DeleteObject(ctx, bkt, markName); err != nil {
		return fmt.Errorf("delete block %s: %w", id, err)
	}
	return nil
}

// DeleteObject deletes the object name; one already gone is no error.
func DeleteObject(ctx context.Context, bkt objstore.Bucket, name string) error {
	if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
