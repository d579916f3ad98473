package compactor

import (
	"slices"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// plan returns the next group of blocks to compact into one, or nil.
//
// Overlapping blocks come first: blocks of the same range from different
// ingesters (replicas) hold mostly the same samples, and merging them
// (vertical compaction) removes the duplicates. Only when no blocks
// overlap, adjacent blocks are compacted into the next range of ranges
// (milliseconds, smallest first). A window [k·r, (k+1)·r) of range r is
// compacted once it holds more than one block that fits in it and either
// the blocks cover it fully, or a block starts at or after its end (newer
// data exists, so the window gets no more blocks in order), or its end is
// more than r older than now.
func plan(metas []*bucket.BlockMeta, ranges []int64, nowMillis int64) []*bucket.BlockMeta {
	if len(metas) < 2 {
		return nil
	}
	sorted := slices.Clone(metas)
	slices.SortFunc(sorted, func(a, b *bucket.BlockMeta) int {
		if a.MinTime != b.MinTime {
			if a.MinTime < b.MinTime {
				return -1
			}
			return 1
		}
		return a.ULID.Compare(b.ULID)
	})

	if g := firstOverlapping(sorted); g != nil {
		return g
	}

	highTime := sorted[len(sorted)-1].MinTime
	for _, r := range ranges[1:] {
		for _, g := range splitByWindow(sorted, r) {
			if len(g) < 2 {
				continue
			}
			windowEnd := windowStart(g[0].MinTime, r) + r
			mint, maxt := g[0].MinTime, g[0].MaxTime
			for _, m := range g[1:] {
				maxt = max(maxt, m.MaxTime)
			}
			if maxt-mint == r || windowEnd <= highTime || windowEnd <= nowMillis-r {
				return g
			}
		}
	}
	return nil
}

// firstOverlapping returns the first group, in time order, of blocks whose
// time ranges overlap (transitively), or nil. Block ranges are half-open:
// [MinTime, MaxTime).
func firstOverlapping(sorted []*bucket.BlockMeta) []*bucket.BlockMeta {
	var group []*bucket.BlockMeta
	var groupMax int64
	for _, m := range sorted {
		if len(group) > 0 && m.MinTime < groupMax {
			group = append(group, m)
			groupMax = max(groupMax, m.MaxTime)
			continue
		}
		if len(group) > 1 {
			return group
		}
		group = []*bucket.BlockMeta{m}
		groupMax = m.MaxTime
	}
	if len(group) > 1 {
		return group
	}
	return nil
}

// splitByWindow groups the blocks (sorted by MinTime) that fit in an
// aligned window of range r and are smaller than it, window by window.
func splitByWindow(sorted []*bucket.BlockMeta, r int64) [][]*bucket.BlockMeta {
	var groups [][]*bucket.BlockMeta
	var cur []*bucket.BlockMeta
	curStart := int64(0)
	for _, m := range sorted {
		start := windowStart(m.MinTime, r)
		if m.MaxTime > start+r || m.MaxTime-m.MinTime >= r {
			continue // crosses the window or already fills it.
		}
		if len(cur) > 0 && start != curStart {
			groups = append(groups, cur)
			cur = nil
		}
		cur = append(cur, m)
		curStart = start
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// windowStart returns the start of the aligned window of range r holding t.
func windowStart(t, r int64) int64 {
	if t >= 0 {
		return t - t%r
	}
	return -((-t + r - 1) / r * r)
}
