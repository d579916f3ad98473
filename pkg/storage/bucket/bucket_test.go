package bucket

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

func newBucket(t *testing.T) objstore.Bucket {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	return bkt
}

// The names are the format of docs/formats.md: changing one loses data.
func TestLayoutNames(t *testing.T) {
	id := ulid.MustParse("01JDQ4Z0W6V2Q7N8ZK3M9ZP1XY")
	require.Equal(t, "t/01JDQ4Z0W6V2Q7N8ZK3M9ZP1XY/", BlockPrefix("t", id))
	require.Equal(t, "t/01JDQ4Z0W6V2Q7N8ZK3M9ZP1XY/meta.json", MetaName("t", id))
	require.Equal(t, "t/01JDQ4Z0W6V2Q7N8ZK3M9ZP1XY/index", IndexName("t", id))
	require.Equal(t, "t/01JDQ4Z0W6V2Q7N8ZK3M9ZP1XY/chunks/", ChunksPrefix("t", id))
	require.Equal(t, "t/01JDQ4Z0W6V2Q7N8ZK3M9ZP1XY/deletion-mark.json", DeletionMarkName("t", id))
	require.Equal(t, "t/tenant-deletion-mark.json", TenantDeletionMarkName("t"))
	require.Equal(t, "t/bucket-index.json.gz", IndexObjectName("t"))

	got, ok := BlockOf("t", ChunksPrefix("t", id)+"000001")
	require.True(t, ok)
	require.Equal(t, id, got)
	got, ok = BlockOf("t", BlockPrefix("t", id))
	require.True(t, ok)
	require.Equal(t, id, got)
	_, ok = BlockOf("t", IndexObjectName("t"))
	require.False(t, ok)
	_, ok = BlockOf("u", MetaName("t", id))
	require.False(t, ok)
}

func TestListBlocksAndMarks(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	complete, marked, partial := ulid.MustNew(1, nil), ulid.MustNew(2, nil), ulid.MustNew(3, nil)
	for _, id := range []ulid.ULID{complete, marked} {
		require.NoError(t, WriteMeta(ctx, bkt, "t", &BlockMeta{BlockMeta: tsdb.BlockMeta{ULID: id}}))
	}
	require.NoError(t, WriteDeletionMark(ctx, bkt, "t", NewDeletionMark(marked, 42)))
	require.NoError(t, bkt.Upload(ctx, IndexName("t", partial), strings.NewReader("partial")))
	require.NoError(t, WriteTenantDeletionMark(ctx, bkt, "t", &TenantDeletionMark{DeletionTime: 7}))

	blocks, err := ListBlocks(ctx, bkt, "t")
	require.NoError(t, err)
	require.Equal(t, map[ulid.ULID]BlockObjects{
		complete: {Meta: true},
		marked:   {Meta: true, DeletionMark: true},
		partial:  {},
	}, blocks)
	n, err := CountBlocks(ctx, bkt, "t")
	require.NoError(t, err)
	require.Equal(t, 3, n)

	mk, found, err := ReadDeletionMark(ctx, bkt, "t", marked)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, NewDeletionMark(marked, 42), mk)
	_, found, err = ReadDeletionMark(ctx, bkt, "t", complete)
	require.NoError(t, err)
	require.False(t, found)
	tmk, found, err := ReadTenantDeletionMark(ctx, bkt, "t")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, int64(7), tmk.DeletionTime)

	_, err = ReadMeta(ctx, bkt, "t", partial)
	require.ErrorIs(t, err, ErrBlockNotFound)
	require.NoError(t, bkt.Upload(ctx, MetaName("t", partial), strings.NewReader(`{"ulid":`)))
	_, err = ReadMeta(ctx, bkt, "t", partial)
	require.ErrorIs(t, err, ErrCorrupted)

	require.NoError(t, DeleteBlock(ctx, bkt, "t", marked))
	blocks, err = ListBlocks(ctx, bkt, "t")
	require.NoError(t, err)
	require.NotContains(t, blocks, marked)

	tenants, err := ListTenants(ctx, bkt)
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, tenants)
}

func TestListAllTenants(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	complete, marked, partial := ulid.MustNew(1, nil), ulid.MustNew(2, nil), ulid.MustNew(3, nil)
	for _, id := range []ulid.ULID{complete, marked} {
		require.NoError(t, WriteMeta(ctx, bkt, "t", &BlockMeta{BlockMeta: tsdb.BlockMeta{ULID: id}}))
	}
	require.NoError(t, WriteDeletionMark(ctx, bkt, "t", NewDeletionMark(marked, 42)))
	require.NoError(t, bkt.Upload(ctx, ChunksPrefix("t", partial)+"000001", strings.NewReader("partial")))
	require.NoError(t, WriteIndex(ctx, bkt, "t", &Index{Version: IndexVersion1}))
	require.NoError(t, WriteTenantDeletionMark(ctx, bkt, "u", &TenantDeletionMark{DeletionTime: 7}))
	require.NoError(t, bkt.Upload(ctx, "not-a-block/x", strings.NewReader("x")))

	tenants, modified, err := ListAllTenants(ctx, bkt)
	require.NoError(t, err)
	require.True(t, modified, "the filesystem bucket reports modification times")
	require.ElementsMatch(t, []string{"t", "u", "not-a-block"}, slices.Collect(maps.Keys(tenants)))
	ten := tenants["t"]
	require.True(t, ten.Index)
	require.False(t, ten.DeletionMark)
	require.Len(t, ten.Blocks, 3)
	require.True(t, ten.Blocks[complete].Meta)
	require.False(t, ten.Blocks[complete].MetaModified.IsZero())
	require.True(t, ten.Blocks[complete].MarkModified.IsZero())
	require.True(t, ten.Blocks[marked].DeletionMark)
	require.False(t, ten.Blocks[marked].MarkModified.IsZero())
	require.Equal(t, BlockObjects{}, ten.Blocks[partial])
	require.True(t, tenants["u"].DeletionMark)
	require.Empty(t, tenants["u"].Blocks)
	require.Empty(t, tenants["not-a-block"].Blocks)

	// Rewriting a meta.json changes its modification time.
	before := ten.Blocks[complete].MetaModified
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, WriteMeta(ctx, bkt, "t", &BlockMeta{BlockMeta: tsdb.BlockMeta{ULID: complete}}))
	tenants, _, err = ListAllTenants(ctx, bkt)
	require.NoError(t, err)
	require.True(t, tenants["t"].Blocks[complete].MetaModified.After(before))
}

func TestBucketIndexRoundTrip(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	_, err := ReadIndex(ctx, bkt, "t")
	require.ErrorIs(t, err, ErrIndexNotFound)
	id := ulid.MustNew(1, nil)
	idx := &Index{
		Version:       IndexVersion1,
		Blocks:        []IndexBlock{{ULID: id, MinTime: 1, MaxTime: 2, CompactionLevel: 1, Source: SourceIngester}},
		DeletionMarks: []IndexDeletionMark{{ULID: id, DeletionTime: 3}},
		UpdatedAt:     4,
	}
	require.NoError(t, WriteIndex(ctx, bkt, "t", idx))
	got, err := ReadIndex(ctx, bkt, "t")
	require.NoError(t, err)
	require.Equal(t, idx, got)
	require.True(t, got.Has(id))
	require.False(t, got.Has(ulid.MustNew(2, nil)))
	require.False(t, (*Index)(nil).Has(id))
}

func TestBlockFinder(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	now := time.Unix(10_000, 0)
	old, replaced, uploading, newest := ulid.MustNew(1, nil), ulid.MustNew(2, nil), ulid.MustNew(3, nil), ulid.MustNew(4, nil)
	for i, id := range []ulid.ULID{old, replaced, newest} {
		require.NoError(t, WriteMeta(ctx, bkt, "t", &BlockMeta{BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: int64(i) * 10, MaxTime: int64(i+1) * 10}}))
	}
	// An upload in progress: meta.json half written, not in the index.
	require.NoError(t, bkt.Upload(ctx, MetaName("t", uploading), strings.NewReader(`{"ulid":`)))

	f := NewBlockFinder(bkt)
	tb, err := f.Blocks(ctx, "t")
	require.NoError(t, err)
	require.Nil(t, tb.Index)
	require.Len(t, tb.Blocks, 3, "the upload in progress is not a block yet")

	require.NoError(t, WriteIndex(ctx, bkt, "t", &Index{
		Version:       IndexVersion1,
		Blocks:        []IndexBlock{{ULID: old}, {ULID: replaced}},
		DeletionMarks: []IndexDeletionMark{{ULID: replaced, DeletionTime: now.Add(-2 * time.Hour).Unix()}},
	}))
	tb, err = f.Blocks(ctx, "t")
	require.NoError(t, err)
	var ids []ulid.ULID
	for _, b := range tb.Queryable(0, 100, now, time.Hour) {
		ids = append(ids, b.ULID)
	}
	require.Equal(t, []ulid.ULID{old, newest}, ids, "marked longer ago than the delay: not queried")
	require.Len(t, tb.Queryable(0, 100, now, 3*time.Hour), 3)
	require.Len(t, tb.Queryable(10, 10, now, 3*time.Hour), 1, "a block holds [MinTime, MaxTime)")

	// A block the index lists whose meta.json goes bad fails the listing.
	require.NoError(t, WriteIndex(ctx, bkt, "t", &Index{Version: IndexVersion1, Blocks: []IndexBlock{{ULID: uploading}}}))
	_, err = f.Blocks(ctx, "t")
	require.ErrorIs(t, err, ErrCorrupted)
}

// The Alertmanager's objects sit under alerts/, which no tenant listing
// may take for a tenant.
func TestAlertmanagerObjects(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	require.Equal(t, "alerts/t/config.yaml", AlertmanagerConfigName("t"))
	require.Equal(t, "alerts/t/silences", AlertmanagerSilencesName("t"))
	require.Equal(t, "alerts/t/nflog", AlertmanagerNotificationLogName("t"))

	require.NoError(t, WriteMeta(ctx, bkt, "t", &BlockMeta{BlockMeta: tsdb.BlockMeta{ULID: ulid.MustNew(1, nil)}}))
	for _, name := range []string{AlertmanagerConfigName("a"), AlertmanagerSilencesName("a"), AlertmanagerSilencesName("b"), AlertmanagerConfigName("c")} {
		require.NoError(t, bkt.Upload(ctx, name, strings.NewReader("x")))
	}
	tenants, err := ListTenants(ctx, bkt)
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, tenants)
	all, _, err := ListAllTenants(ctx, bkt)
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, slices.Collect(maps.Keys(all)))
	require.False(t, ValidTenant("alerts"))

	configs, err := ListAlertmanagerConfigs(ctx, bkt)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"a", "c"}, slices.Collect(maps.Keys(configs)), "b has state but no configuration")
	require.False(t, configs["a"].IsZero(), "the filesystem bucket reports when a configuration was written")
}

func TestRuleGroupLayout(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	for _, k := range []RuleGroupKey{{"ns", "g"}, {"team/folder one", "grp ü"}, {"ns", "h"}} {
		require.NoError(t, bkt.Upload(ctx, RuleGroupName("t1", k.Namespace, k.Group), strings.NewReader("x")))
	}
	require.NoError(t, bkt.Upload(ctx, RuleGroupName("t2", "ns", "g"), strings.NewReader("x")))
	require.NoError(t, bkt.Upload(ctx, "t1/bucket-index.json.gz", strings.NewReader("x")))

	tenants, err := ListRuleTenants(ctx, bkt)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"t1", "t2"}, tenants)
	keys, err := ListRuleGroups(ctx, bkt, "t1", "")
	require.NoError(t, err)
	require.ElementsMatch(t, []RuleGroupKey{{"ns", "g"}, {"team/folder one", "grp ü"}, {"ns", "h"}}, keys)
	keys, err = ListRuleGroups(ctx, bkt, "t1", "team/folder one")
	require.NoError(t, err)
	require.Equal(t, []RuleGroupKey{{"team/folder one", "grp ü"}}, keys)
	// rules/ is not a tenant of the blocks.
	blockTenants, err := ListTenants(ctx, bkt)
	require.NoError(t, err)
	require.Equal(t, []string{"t1"}, blockTenants)
}
