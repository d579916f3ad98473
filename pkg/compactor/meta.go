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
	// partialUnknown: the last bucket index could not be read, so partial
	// blocks could not be told from broken ones and are not in partial.
	partialUnknown bool
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

// tenantMemo is what a compactor remembers of a tenant it processed.
type tenantMemo struct {
	listed map[ulid.ULID]bucket.BlockObjects // the listing the processing started from.
	state  *tenantState                      // the state the processing left.
}

// meta returns the block's meta.json as the tenant's last processing read
// it, if meta.json was not written since. Without modification times
// nothing is reused.
func (m *tenantMemo) meta(id ulid.ULID, now bucket.BlockObjects) (*bucket.BlockMeta, bool) {
	if m == nil || now.MetaModified.IsZero() || !m.listed[id].MetaModified.Equal(now.MetaModified) {
		return nil, false
	}
	meta, ok := m.state.metas[id]
	return meta, ok
}

// mark is meta for the block's deletion mark.
func (m *tenantMemo) mark(id ulid.ULID, now bucket.BlockObjects) (*bucket.DeletionMark, bool) {
	if m == nil || now.MarkModified.IsZero() || !m.listed[id].MarkModified.Equal(now.MarkModified) {
		return nil, false
	}
	mk, ok := m.state.marks[id]
	return mk, ok
}
