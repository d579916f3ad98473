package compactor

import (
	"slices"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// newBucketIndex builds the index of a tenant listing. Blocks whose
// meta.json went bad keep their entry of the last index.
func newBucketIndex(s *tenantState, updatedAt int64) *bucket.Index {
	idx := &bucket.Index{
		Version:       bucket.IndexVersion1,
		Blocks:        []bucket.IndexBlock{},
		DeletionMarks: []bucket.IndexDeletionMark{},
		UpdatedAt:     updatedAt,
	}
	for _, m := range s.metas {
		idx.Blocks = append(idx.Blocks, bucket.IndexBlock{
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
	slices.SortFunc(idx.Blocks, func(a, b bucket.IndexBlock) int {
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
		idx.DeletionMarks = append(idx.DeletionMarks, bucket.IndexDeletionMark{ULID: id, DeletionTime: mk.DeletionTime})
	}
	slices.SortFunc(idx.DeletionMarks, func(a, b bucket.IndexDeletionMark) int { return a.ULID.Compare(b.ULID) })
	return idx
}
