package compactor

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// ErrBucketIndexNotFound is returned by ReadBucketIndex when the tenant
// has no bucket index (yet).
var ErrBucketIndexNotFound = errors.New("bucket index not found")

// maxBucketIndexSize bounds the decompressed size of a bucket index.
const maxBucketIndexSize = 256 << 20

// BucketIndex is <tenant>/bucket-index.json.gz: the tenant's complete
// blocks and deletion marks as the compactor last saw them, so readers
// need not list the bucket.
type BucketIndex struct {
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
	// Source is what produced the block: "ingester" or "compactor".
	Source string `json:"source"`
}

// IndexDeletionMark is a block's deletion mark in the bucket index.
type IndexDeletionMark struct {
	ULID         ulid.ULID `json:"ulid"`
	DeletionTime int64     `json:"deletion_time"`
}

// ReadBucketIndex reads the tenant's bucket index from bkt, the whole
// bucket. It returns an error wrapping ErrBucketIndexNotFound when there
// is none.
func ReadBucketIndex(ctx context.Context, bkt objstore.BucketReader, tenant string) (*BucketIndex, error) {
	name := path.Join(tenant, bucketIndexFilename)
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("tenant %s: %w", tenant, ErrBucketIndexNotFound)
		}
		return nil, fmt.Errorf("read bucket index of tenant %s: %w", tenant, err)
	}
	defer rc.Close()
	gz, err := gzip.NewReader(rc)
	if err != nil {
		return nil, fmt.Errorf("decompress bucket index of tenant %s: %w", tenant, err)
	}
	defer gz.Close()
	body, err := io.ReadAll(io.LimitReader(gz, maxBucketIndexSize))
	if err != nil {
		return nil, fmt.Errorf("decompress bucket index of tenant %s: %w", tenant, err)
	}
	var idx BucketIndex
	if err := json.Unmarshal(body, &idx); err != nil {
		return nil, fmt.Errorf("decode bucket index of tenant %s: %w", tenant, err)
	}
	if idx.Version != bucketIndexVersion1 {
		return nil, fmt.Errorf("bucket index of tenant %s has unsupported version %d", tenant, idx.Version)
	}
	return &idx, nil
}

// newBucketIndex builds the index of a tenant listing. Blocks whose
// meta.json went bad keep their entry of the last index.
func newBucketIndex(s *tenantState, updatedAt int64) *BucketIndex {
	idx := &BucketIndex{
		Version:       bucketIndexVersion1,
		Blocks:        []IndexBlock{},
		DeletionMarks: []IndexDeletionMark{},
		UpdatedAt:     updatedAt,
	}
	for _, m := range s.metas {
		idx.Blocks = append(idx.Blocks, IndexBlock{
			ULID:            m.ULID,
			MinTime:         m.MinTime,
			MaxTime:         m.MaxTime,
			CompactionLevel: m.Compaction.Level,
			Source:          m.Meridian.Source,
		})
	}
	for _, b := range s.broken {
		idx.Blocks = append(idx.Blocks, b)
	}
	slices.SortFunc(idx.Blocks, func(a, b IndexBlock) int {
		if a.MinTime != b.MinTime {
			if a.MinTime < b.MinTime {
				return -1
			}
			return 1
		}
		return a.ULID.Compare(b.ULID)
	})
	for id, mk := range s.marks {
		if _, ok := s.metas[id]; !ok {
			continue // a block being deleted: meta.json is already gone.
		}
		idx.DeletionMarks = append(idx.DeletionMarks, IndexDeletionMark{ULID: id, DeletionTime: mk.DeletionTime})
	}
	slices.SortFunc(idx.DeletionMarks, func(a, b IndexDeletionMark) int { return a.ULID.Compare(b.ULID) })
	return idx
}

func writeBucketIndex(ctx context.Context, bkt objstore.Bucket, tenant string, idx *BucketIndex) error {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if err := json.NewEncoder(gz).Encode(idx); err != nil {
		return fmt.Errorf("encode bucket index of tenant %s: %w", tenant, err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("compress bucket index of tenant %s: %w", tenant, err)
	}
	if err := bkt.Upload(ctx, path.Join(tenant, bucketIndexFilename), &buf); err != nil {
		return fmt.Errorf("upload bucket index of tenant %s: %w", tenant, err)
	}
	return nil
}
