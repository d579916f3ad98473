// Package bucket is the one home of Meridian's object-storage layout
// (docs/formats.md): the names of every object, the block meta, the
// deletion marks, the bucket index and the block finder. No other package
// knows a file name of the bucket; they ask this one.
//
//	<tenant>/
//	├── <ULID>/                       one block
//	│   ├── chunks/000001 ...         Prometheus chunk segments
//	│   ├── index                     Prometheus TSDB index
//	│   ├── meta.json                 BlockMeta, written last: the completeness marker
//	│   └── deletion-mark.json        DeletionMark, once the block is to go
//	├── bucket-index.json.gz          Index, written by the compactor
//	└── tenant-deletion-mark.json     TenantDeletionMark, once the tenant is to go
//	rules/<tenant>/...                the ruler's rule groups (rules.go)
//	alerts/<tenant>/...               the Alertmanager's configurations and state (alerts.go)
//
// Every name here is of the whole bucket, tenant first.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// Names of the objects of a block and of a tenant. A local block directory
// (Prometheus' TSDB) uses the same names.
const (
	metaFilename               = "meta.json"
	indexFilename              = "index"
	chunksDirname              = "chunks"
	deletionMarkFilename       = "deletion-mark.json"
	tenantDeletionMarkFilename = "tenant-deletion-mark.json"
	bucketIndexFilename        = "bucket-index.json.gz"
)

// maxJSONSize bounds a meta.json or mark: a larger one is not ours.
const maxJSONSize = 16 << 20

// ErrBlockNotFound is returned for a block without a meta.json: not
// uploaded completely yet, or deleted.
var ErrBlockNotFound = errors.New("block not found in object storage")

// ErrCorrupted marks errors caused by a block whose objects are not what
// their format says: short objects, bad checksums, bad lengths, a
// meta.json that does not decode.
var ErrCorrupted = errors.New("block corrupted or truncated")

// BlockPrefix is the prefix of every object of the block, ending in "/".
func BlockPrefix(tenant string, id ulid.ULID) string {
	return path.Join(tenant, id.String()) + objstore.DirDelim
}

// MetaName is the block's meta.json.
func MetaName(tenant string, id ulid.ULID) string { return blockObject(tenant, id, metaFilename) }

// IndexName is the block's TSDB index.
func IndexName(tenant string, id ulid.ULID) string { return blockObject(tenant, id, indexFilename) }

// ChunksPrefix is the prefix of the block's chunk segments, ending in "/".
func ChunksPrefix(tenant string, id ulid.ULID) string {
	return blockObject(tenant, id, chunksDirname) + objstore.DirDelim
}

// DeletionMarkName is the block's deletion mark.
func DeletionMarkName(tenant string, id ulid.ULID) string {
	return blockObject(tenant, id, deletionMarkFilename)
}

// TenantDeletionMarkName is the tenant's deletion mark.
func TenantDeletionMarkName(tenant string) string {
	return path.Join(tenant, tenantDeletionMarkFilename)
}

// IndexObjectName is the tenant's bucket index.
func IndexObjectName(tenant string) string { return path.Join(tenant, bucketIndexFilename) }

func blockObject(tenant string, id ulid.ULID, file string) string {
	return path.Join(tenant, id.String(), file)
}

// LocalMetaPath, LocalIndexPath and LocalChunksDir are the files of a
// local TSDB block directory, as Prometheus writes them.
func LocalMetaPath(dir string) string  { return filepath.Join(dir, metaFilename) }
func LocalIndexPath(dir string) string { return filepath.Join(dir, indexFilename) }
func LocalChunksDir(dir string) string { return filepath.Join(dir, chunksDirname) }

// ValidTenant reports whether name can be a tenant's prefix. The ruler's
// directory (rules/) and the Alertmanager's (alerts/) are not a tenant's.
func ValidTenant(name string) bool {
	_, reserved := ReservedTenantIDs()[name]
	return name != "" && name != "." && name != ".." && !reserved && !strings.ContainsAny(name, `/\`)
}

// ReservedTenantIDs are the top-level names of the bucket that are not a
// tenant's, with what they hold; the tenant edge refuses them as tenant IDs.
func ReservedTenantIDs() map[string]string {
	return map[string]string{
		rulesDir:  "the ruler's rule groups",
		alertsDir: "the Alertmanager's configurations and state",
	}
}

// ListTenants returns the tenants with a prefix in bkt, the whole bucket.
func ListTenants(ctx context.Context, bkt objstore.BucketReader) ([]string, error) {
	var tenants []string
	err := bkt.Iter(ctx, "", func(name string) error {
		t, ok := strings.CutSuffix(name, objstore.DirDelim)
		if ok && ValidTenant(t) {
			tenants = append(tenants, t)
		}
		return nil
	})
	return tenants, err
}

// BlockOf returns the block whose directory holds the object (or directory)
// name of the tenant, and whether name is in a block directory at all.
func BlockOf(tenant, name string) (ulid.ULID, bool) {
	rest, ok := strings.CutPrefix(name, tenant+objstore.DirDelim)
	if !ok {
		return ulid.ULID{}, false
	}
	dir, _, ok := strings.Cut(rest, objstore.DirDelim)
	if !ok {
		return ulid.ULID{}, false
	}
	id, err := ulid.ParseStrict(dir)
	return id, err == nil
}

// BlockObjects is what a listing shows of one block directory.
type BlockObjects struct {
	Meta         bool // meta.json present: the block is complete
	DeletionMark bool // deletion-mark.json present
	// MetaModified and MarkModified are when meta.json and
	// deletion-mark.json were last written, as ListAllTenants reports
	// them; zero when the bucket does not tell (and from ListBlocks).
	MetaModified, MarkModified time.Time
}

// TenantObjects is what a listing of the whole bucket shows of one tenant.
type TenantObjects struct {
	Blocks       map[ulid.ULID]BlockObjects
	Index        bool // bucket-index.json.gz present
	DeletionMark bool // tenant-deletion-mark.json present
}

// ListAllTenants lists every tenant's blocks with one recursive listing of
// the whole bucket: one listing per run however many tenants there are,
// instead of one per tenant. When the bucket reports modification times,
// modified is true and every BlockObjects carries them.
func ListAllTenants(ctx context.Context, bkt objstore.BucketReader) (tenants map[string]*TenantObjects, modified bool, err error) {
	tenants = map[string]*TenantObjects{}
	modified = slices.Contains(bkt.SupportedIterOptions(), objstore.UpdatedAt)
	opts := []objstore.IterOption{objstore.WithRecursiveIter()}
	if modified {
		opts = append(opts, objstore.WithUpdatedAt())
	}
	err = bkt.IterWithAttributes(ctx, "", func(attrs objstore.IterObjectAttributes) error {
		tenant, rest, ok := strings.Cut(attrs.Name, objstore.DirDelim)
		if !ok || !ValidTenant(tenant) {
			return nil
		}
		t := tenants[tenant]
		if t == nil {
			t = &TenantObjects{Blocks: map[ulid.ULID]BlockObjects{}}
			tenants[tenant] = t
		}
		dir, file, ok := strings.Cut(rest, objstore.DirDelim)
		if !ok {
			switch rest {
			case bucketIndexFilename:
				t.Index = true
			case tenantDeletionMarkFilename:
				t.DeletionMark = true
			}
			return nil
		}
		id, err := ulid.ParseStrict(dir)
		if err != nil {
			return nil
		}
		b := t.Blocks[id]
		lastModified, _ := attrs.LastModified()
		switch file {
		case metaFilename:
			b.Meta, b.MetaModified = true, lastModified
		case deletionMarkFilename:
			b.DeletionMark, b.MarkModified = true, lastModified
		}
		t.Blocks[id] = b
		return nil
	}, opts...)
	if err != nil {
		return nil, false, fmt.Errorf("list the bucket: %w", err)
	}
	return tenants, modified, nil
}

// ListBlocks lists the tenant's block directories with one recursive
// listing of its prefix.
func ListBlocks(ctx context.Context, bkt objstore.BucketReader, tenant string) (map[ulid.ULID]BlockObjects, error) {
	blocks := map[ulid.ULID]BlockObjects{}
	prefix := tenant + objstore.DirDelim
	err := bkt.Iter(ctx, prefix, func(name string) error {
		dir, file, ok := strings.Cut(strings.TrimPrefix(name, prefix), objstore.DirDelim)
		if !ok {
			return nil
		}
		id, err := ulid.ParseStrict(dir)
		if err != nil {
			return nil
		}
		b := blocks[id]
		switch file {
		case metaFilename:
			b.Meta = true
		case deletionMarkFilename:
			b.DeletionMark = true
		}
		blocks[id] = b
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return nil, fmt.Errorf("list blocks of tenant %s: %w", tenant, err)
	}
	return blocks, nil
}

// CountBlocks counts the tenant's block directories, complete or not, with
// a listing of its prefix only.
func CountBlocks(ctx context.Context, bkt objstore.BucketReader, tenant string) (int, error) {
	n := 0
	err := bkt.Iter(ctx, tenant+objstore.DirDelim, func(name string) error {
		if _, ok := BlockOf(tenant, name); ok {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list blocks of tenant %s: %w", tenant, err)
	}
	return n, nil
}
