package compactor

import (
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

func meta(n uint64, mint, maxt int64) *bucket.BlockMeta {
	return &bucket.BlockMeta{BlockMeta: tsdb.BlockMeta{ULID: ulid.MustNew(n, nil), MinTime: mint, MaxTime: maxt}}
}

func TestPlan(t *testing.T) {
	ranges := []int64{2 * hour, 12 * hour, 24 * hour}
	cases := []struct {
		name   string
		metas  []*bucket.BlockMeta
		now    int64
		expect []uint64 // ULID times of the group, in MinTime order; nil: nothing.
	}{
		{name: "empty", now: 100 * hour},
		{name: "one block", metas: []*bucket.BlockMeta{meta(1, 0, 2*hour)}, now: 100 * hour},
		{
			name:   "replicas overlap",
			metas:  []*bucket.BlockMeta{meta(1, 0, 2*hour), meta(2, 5, 2*hour), meta(3, 0, 2*hour), meta(4, 2*hour, 4*hour)},
			now:    5 * hour,
			expect: []uint64{1, 3, 2},
		},
		{
			name:   "overlap found after adjacent blocks",
			metas:  []*bucket.BlockMeta{meta(1, 0, 2*hour), meta(2, 2*hour, 4*hour), meta(3, 3*hour, 4*hour)},
			now:    5 * hour,
			expect: []uint64{2, 3},
		},
		{
			name:   "incomplete 12h window with nothing newer waits",
			metas:  []*bucket.BlockMeta{meta(1, 0, 2*hour), meta(2, 2*hour, 4*hour)},
			now:    5 * hour,
			expect: nil,
		},
		{
			name:   "incomplete 12h window is compacted once newer blocks exist",
			metas:  []*bucket.BlockMeta{meta(1, 0, 2*hour), meta(2, 2*hour, 4*hour), meta(3, 12*hour, 14*hour)},
			now:    15 * hour,
			expect: []uint64{1, 2},
		},
		{
			name:   "incomplete 12h window is compacted once older than the range",
			metas:  []*bucket.BlockMeta{meta(1, 0, 2*hour), meta(2, 2*hour, 4*hour)},
			now:    24 * hour,
			expect: []uint64{1, 2},
		},
		{
			name: "full 12h window",
			metas: []*bucket.BlockMeta{
				meta(1, 0, 2*hour), meta(2, 2*hour, 4*hour), meta(3, 4*hour, 6*hour),
				meta(4, 6*hour, 8*hour), meta(5, 8*hour, 10*hour), meta(6, 10*hour, 12*hour),
			},
			now:    12 * hour,
			expect: []uint64{1, 2, 3, 4, 5, 6},
		},
		{
			name:   "two 12h blocks into 24h",
			metas:  []*bucket.BlockMeta{meta(1, 0, 12*hour), meta(2, 12*hour, 24*hour)},
			now:    25 * hour,
			expect: []uint64{1, 2},
		},
		{
			name:   "blocks crossing a window are left alone",
			metas:  []*bucket.BlockMeta{meta(1, 11*hour, 13*hour), meta(2, 13*hour, 15*hour)},
			now:    25 * hour,
			expect: nil,
		},
		{
			name:   "biggest range reached",
			metas:  []*bucket.BlockMeta{meta(1, 0, 24*hour), meta(2, 24*hour, 48*hour)},
			now:    100 * hour,
			expect: nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(tc.metas, ranges, tc.now)
			var ids []uint64
			for _, m := range got {
				ids = append(ids, m.ULID.Time())
			}
			require.Equal(t, tc.expect, ids)
		})
	}
}

func TestWindowStart(t *testing.T) {
	require.Equal(t, int64(0), windowStart(0, 10))
	require.Equal(t, int64(0), windowStart(9, 10))
	require.Equal(t, int64(10), windowStart(10, 10))
	require.Equal(t, int64(-10), windowStart(-1, 10))
	require.Equal(t, int64(-10), windowStart(-10, 10))
}

func TestSupersedes(t *testing.T) {
	a, b, c := ulid.MustNew(1, nil), ulid.MustNew(2, nil), ulid.MustNew(3, nil)
	withSources := func(id ulid.ULID, srcs ...ulid.ULID) *bucket.BlockMeta {
		m := &bucket.BlockMeta{}
		m.ULID = id
		m.Compaction.Sources = srcs
		return m
	}
	r1 := ulid.MustNew(10, nil)
	r2 := ulid.MustNew(11, nil)
	require.True(t, supersedes(withSources(r1, a, b, c), withSources(a, a)))
	require.True(t, supersedes(withSources(r1, a, b, c), withSources(r2, a, b)))
	require.False(t, supersedes(withSources(r2, a, b), withSources(r1, a, b, c)))
	require.False(t, supersedes(withSources(r1, a, b), withSources(c, c)))
	require.True(t, supersedes(withSources(r2, a, b), withSources(r1, a, b)), "same sources: the newer wins")
	require.False(t, supersedes(withSources(r1, a, b), withSources(r2, a, b)))
}
