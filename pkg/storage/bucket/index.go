package bucket

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// ErrIndexNotFound is returned by ReadIndex when the tenant has no bucket
// index (yet).
var ErrIndexNotFound = errors.New("bucket index not found")

// IndexVersion1 is the version of the bucket index format.
const IndexVersion1 = 1

// maxIndexSize bounds the decompressed size of a bucket index.
const maxIndexSize = 256 << 20

// Index is <tenant>/bucket-index.json.gz: the tenant's complete blocks
// and deletion marks as the compactor last saw them, so readers need not
// list the bucket.
type Index struct {
	Version int `json:"version"`
	// Blocks are the complete blocks (those with a meta.json), marked for
	// deletion or not, sorted by MinTime then ULID.
	Blocks []IndexBlock `json:"blocks"`
	// DeletionMarks are the blocks marked for deletion, sorted by ULID.
	// Readers should stop using a marked block well before DeletionTime
	// plus the compactor's deletion delay.
	DeletionMarks []IndexDeletionMark `json:"block_deletion_marks"`
	// UpdatedAt is the Unix time, in seconds, the index was written.
	UpdatedAt int64 `json:"updated_at"`
}

// IndexBlock describes one block in the bucket index.
type IndexBlock struct {
	ULID            ulid.ULID `json:"ulid"`
	MinTime         int64     `json:"min_time"`
	MaxTime         int64     `json:"max_time"`
	CompactionLevel int       `json:"compaction_level"`
	// Source is what produced the block: SourceIngester or SourceCompactor.
	Source string `json:"source"`
}

// IndexDeletionMark is a block's deletion mark in the bucket index.
type IndexDeletionMark struct {
	ULID         ulid.ULID `json:"ulid"`
	DeletionTime int64     `json:"deletion_time"`
}

// Has reports whether the index lists block id; a nil index lists none.
func (idx *Index) Has(id ulid.ULID) bool {
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

// ReadIndex reads the tenant's bucket index from bkt, the whole bucket. It
// returns an error wrapping ErrIndexNotFound when there is none.
func ReadIndex(ctx context.Context, bkt objstore.BucketReader, tenant string) (*Index, error) {
	rc, err := bkt.Get(ctx, IndexObjectName(tenant))
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("tenant %s: %w", tenant, ErrIndexNotFound)
		}
		return nil, fmt.Errorf("read bucket index of tenant %s: %w", tenant, err)
	}
	defer rc.Close()
	gz, err := gzip.NewReader(rc)
	if err != nil {
		return nil, fmt.Errorf("decompress bucket index of tenant %s: %w", tenant, err)
	}
	defer gz.Close()
	body, err := io.ReadAll(io.LimitReader(gz, maxIndexSize))
	if err != nil {
		return nil, fmt.Errorf("decompress bucket index of tenant %s: %w", tenant, err)
	}
	var idx Index
	if err := json.Unmarshal(body, &idx); err != nil {
		return nil, fmt.Errorf("decode bucket index of tenant %s: %w", tenant, err)
	}
	if idx.Version != IndexVersion1 {
		return nil, fmt.Errorf("bucket index of tenant %s has unsupported version %d", tenant, idx.Version)
	}
	return &idx, nil
}

// WriteIndex uploads the tenant's bucket index.
func WriteIndex(ctx context.Context, bkt objstore.Bucket, tenant string, idx *Index) error {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if err := json.NewEncoder(gz).Encode(idx); err != nil {
		return fmt.Errorf("encode bucket index of tenant %s: %w", tenant, err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("compress bucket index of tenant %s: %w", tenant, err)
	}
	if err := bkt.Upload(ctx, IndexObjectName(tenant), &buf); err != nil {
		return fmt.Errorf("upload bucket index of tenant %s: %w", tenant, err)
	}
	return nil
}
