package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// TenantObjects returns every object of tenant in the shared bucket, by
// path relative to the tenant's prefix, with the SHA-256 of its content.
// A tenant without objects gives an empty map.
func (c *Cluster) TenantObjects(tenant string) (map[string]string, error) {
	root := filepath.Join(c.BucketDir(), tenant)
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	return out, err
}

// BlockDirs lists the block directories of tenant in the shared bucket,
// complete or not: name -> whether it holds a meta.json that decodes (one
// cut short by a killed uploader does not make a block complete).
func (c *Cluster) BlockDirs(tenant string) (map[string]bool, error) {
	entries, err := os.ReadDir(filepath.Join(c.BucketDir(), tenant))
	if err != nil {
		if os.IsNotExist(err) {
			return map[string]bool{}, nil
		}
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := ulid.ParseStrict(e.Name()); err != nil {
			continue
		}
		if !holdsFile(filepath.Join(c.BucketDir(), tenant, e.Name())) {
			// Directories are not objects: an empty one (a delete or an
			// upload killed between a file and its directory) is in no
			// listing of the bucket.
			continue
		}
		data, err := os.ReadFile(bucket.LocalMetaPath(filepath.Join(c.BucketDir(), tenant, e.Name())))
		out[e.Name()] = err == nil && json.Valid(data)
	}
	return out, nil
}

// holdsFile reports whether the directory tree at dir holds a file.
func holdsFile(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// ReadBucketIndex reads tenant's bucket index from the shared bucket the
// way readers do.
func (c *Cluster) ReadBucketIndex(tenant string) (*bucket.Index, error) {
	bkt, err := filesystem.NewBucket(c.BucketDir())
	if err != nil {
		return nil, err
	}
	defer bkt.Close()
	return bucket.ReadIndex(context.Background(), bkt, tenant)
}

// CountLogLines counts the lines of the process log that contain substr,
// leaving out the harness' own lines. A missing log counts zero.
func (p *Process) CountLogLines(substr string) int {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "==== harness") && strings.Contains(line, substr) {
			n++
		}
	}
	return n
}
