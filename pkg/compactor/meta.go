package compactor

import (
	"github.com/oklog/ulid/v2"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

const (
	compactorWorkDirname    = "compact"
	maxCompactionsPerTenant = 1000 // bounds one tenant's share of a run.
)

// tenantState is what one listing of a tenant's prefix shows.
type tenantState struct {
	metas map[ulid.ULID]*bucket.BlockMeta    // complete blocks: meta.json present and readable.
	marks map[ulid.ULID]*bucket.DeletionMark // blocks marked for deletion, complete or not.
	// partial are the block directories without a readable meta.json,
	// without a deletion mark and not in the last bucket index: uploads in
	// progress, or cut short by a killed uploader.
	partial map[ulid.ULID]struct{}
	// broken are blocks of the last bucket index whose meta.json no longer
	// decodes, with their entry in that index.
	broken map[ulid.ULID]bucket.IndexBlock
}

// unmarked returns the complete blocks without a deletion mark.
func (s *tenantState) unmarked() []*bucket.BlockMeta {
	var out []*bucket.BlockMeta
	for id, m := range s.metas {
		if _, ok := s.marks[id]; !ok {
			out = append(out, m)
		}
	}
	return out
}
