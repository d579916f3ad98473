package storegateway

import (
	"context"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/storage/bucket"
	"github.com/meridianhq/meridian/pkg/util/matchers"
)

// A query's postings, read through the block's postings table, equal
// those of Prometheus' reader over the whole index.
func TestQueryIndexPostings(t *testing.T) {
	f := newFixture(t, 1<<30)
	ctx := context.Background()
	blk, err := f.store.block(ctx, testTenant, f.metas[0].ULID)
	require.NoError(t, err)
	defer blk.release()
	full, err := index.NewReader(blk.indexBytesFor(ctx), index.DecodePostingsRaw)
	require.NoError(t, err)

	for _, ms := range [][]*labels.Matcher{
		{labels.MustNewMatcher(labels.MatchEqual, "", "")},
		{labels.MustNewMatcher(labels.MatchEqual, "__name__", "requests_total")},
		{labels.MustNewMatcher(labels.MatchEqual, "instance", "i-000")},
		{labels.MustNewMatcher(labels.MatchEqual, "instance", "i-199")},
		{labels.MustNewMatcher(labels.MatchEqual, "instance", "i-200")},
		{labels.MustNewMatcher(labels.MatchEqual, "instance", "a")},
		{labels.MustNewMatcher(labels.MatchEqual, "nope", "x")},
		{labels.MustNewMatcher(labels.MatchRegexp, "instance", "i-031|i-032|i-033|i-064|i-999|i-")},
		{labels.MustNewMatcher(labels.MatchRegexp, "instance", "i-1.*")},
		{labels.MustNewMatcher(labels.MatchEqual, "job", "job-3"), labels.MustNewMatcher(labels.MatchNotRegexp, "instance", "i-0.*")},
		{labels.MustNewMatcher(labels.MatchNotEqual, "job", "")},
		{labels.MustNewMatcher(labels.MatchEqual, "__name__", "requests_total"), labels.MustNewMatcher(labels.MatchEqual, "nope", "")},
	} {
		want, err := tsdb.PostingsForMatchers(ctx, full, ms...)
		require.NoError(t, err)
		wantRefs, err := index.ExpandPostings(want)
		require.NoError(t, err)
		var got index.Postings
		require.NoError(t, catchIndexRead(func() error {
			got, err = tsdb.PostingsForMatchers(ctx, blk.indexFor(ctx), ms...)
			return err
		}))
		gotRefs, err := index.ExpandPostings(got)
		require.NoError(t, err)
		require.Equal(t, wantRefs, gotRefs, "%v", ms)
	}
}

// gatedBucket blocks every GetRange, once armed, until its context ends,
// and counts them.
type gatedBucket struct {
	objstore.Bucket
	blocked chan getRangeCall // receives each blocked call

	mu    sync.Mutex
	armed bool
	calls int
}

type getRangeCall struct {
	name        string
	off, length int64
}

func (b *gatedBucket) arm() {
	b.mu.Lock()
	b.armed = true
	b.mu.Unlock()
}

func (b *gatedBucket) armedCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

func (b *gatedBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	b.mu.Lock()
	armed := b.armed
	if armed {
		b.calls++
	}
	b.mu.Unlock()
	if !armed {
		return b.Bucket.GetRange(ctx, name, off, length)
	}
	select {
	case b.blocked <- getRangeCall{name: name, off: off, length: length}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// A Series query cancelled while it reads a postings list from object
// storage returns at once with the context's error and reads nothing more.
func TestSeriesCancelledDuringPostingsRead(t *testing.T) {
	f := newFixture(t, 1<<30)
	gb := &gatedBucket{Bucket: f.bkt, blocked: make(chan getRangeCall, 1)}
	// No cache: the postings lists are read from object storage.
	st := NewStore(gb, noCache{}, t.TempDir(), 1<<30, log.NewNopLogger(), newMetrics(prometheus.NewPedanticRegistry()))
	id := f.metas[0].ULID
	blk, err := st.block(context.Background(), testTenant, id) // loads the index header
	require.NoError(t, err)
	blk.release()

	pms, err := matchers.ToProto([]*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "instance", "i-1.*")})
	require.NoError(t, err)
	req := &meridianpb.StoreSeriesRequest{MinTimeMs: 0, MaxTimeMs: 2 * hourMs, Matchers: pms, BlockIds: f.ids(f.metas[0])}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gb.arm()
	done := make(chan error, 1)
	go func() {
		done <- st.Series(ctx, testTenant, req, func(*meridianpb.StoreSeriesResponse) error { return nil })
	}()

	var call getRangeCall
	select {
	case call = <-gb.blocked:
	case err := <-done:
		t.Fatalf("query ended before reading object storage: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("query issued no GetRange")
	}
	// The blocked read is of the postings section of the index.
	require.Equal(t, bucket.IndexName(testTenant, id), call.name)
	raw, err := os.ReadFile(f.object(call.name))
	require.NoError(t, err)
	toc, err := index.NewTOCFromByteSlice(realByteSlice(raw))
	require.NoError(t, err)
	require.Greater(t, call.off+call.length, int64(toc.Postings), "read ends before the postings")
	require.Less(t, call.off, int64(toc.PostingsTable), "read starts after the postings")

	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled query did not return")
	}
	require.Equal(t, 1, gb.armedCalls(), "GetRange calls after the blocked one")
}

type realByteSlice []byte

func (b realByteSlice) Len() int                    { return len(b) }
func (b realByteSlice) Range(start, end int) []byte { return b[start:end] }
