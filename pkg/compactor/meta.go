package compactor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/storage"
)

// Names of objects in the bucket.
const (
	blockMetaFilename       = "meta.json"
	blockIndexFilename      = "index"
	blockChunksDirname      = "chunks"
	deletionMarkFilename    = "deletion-mark.json"
	tenantDeletionMarkName  = "tenant-deletion-mark.json"
	bucketIndexFilename     = "bucket-index.json.gz"
	deletionMarkVersion1    = 1
	bucketIndexVersion1     = 1
	compactorWorkDirname    = "compact"
	SourceCompactor         = "compactor"
	maxMetaSize             = 16 << 20 // a meta.json or mark larger than this is not ours.
	maxCompactionsPerTenant = 1000     // bounds one tenant's share of a run.
)

// MeridianMeta and BlockMeta are the meta.json format shared with the
// ingesters' shipper.
type (
	MeridianMeta = storage.MeridianMeta
	BlockMeta    = storage.BlockMeta
)

// DeletionMark is <tenant>/<ULID>/deletion-mark.json: the block is
// deleted once DeletionTime is older than the deletion delay.
type DeletionMark struct {
	ID ulid.ULID `json:"id"`
	// DeletionTime is the Unix time, in seconds, the block was marked.
	DeletionTime int64 `json:"deletion_time"`
	Version      int   `json:"version"`
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

func blockPath(tenant string, id ulid.ULID, file string) string {
	return path.Join(tenant, id.String(), file)
}

// readJSON decodes the object name into v. A missing object is reported
// with an error for which bkt.IsObjNotFoundErr is true.
func readJSON(ctx context.Context, bkt objstore.BucketReader, name string, v any) error {
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, maxMetaSize))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", name, err)
	}
	return nil
}

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

// listTenants returns the top-level prefixes of the bucket.
func listTenants(ctx context.Context, bkt objstore.BucketReader) ([]string, error) {
	var tenants []string
	err := bkt.Iter(ctx, "", func(name string) error {
		t, ok := strings.CutSuffix(name, objstore.DirDelim)
		if ok && validTenant(t) {
			tenants = append(tenants, t)
		}
		return nil
	})
	return tenants, err
}

func validTenant(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`)
}

// tenantState is what one listing of a tenant's prefix shows.
type tenantState struct {
	metas map[ulid.ULID]*BlockMeta    // complete blocks: meta.json present and readable.
	marks map[ulid.ULID]*DeletionMark // blocks marked for deletion, complete or not.
	// partial are the block directories without a readable meta.json,
	// without a deletion mark and not in the last bucket index: uploads in
	// progress, or cut short by a killed uploader.
	partial map[ulid.ULID]struct{}
	// broken are blocks of the last bucket index whose meta.json no longer
	// decodes, with their entry in that index.
	broken map[ulid.ULID]IndexBlock
}

// unmarked returns the complete blocks without a deletion mark.
func (s *tenantState) unmarked() []*BlockMeta {
	var out []*BlockMeta
	for id, m := range s.metas {
		if _, ok := s.marks[id]; !ok {
			out = append(out, m)
		}
	}
	return out
}
