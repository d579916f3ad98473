package integration

import (
	"context"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/integration/harness"
)

// s3Blocks lists the block ULIDs of tenant whose meta.json is in the S3
// bucket, read from the server's directory on disk.
func s3Blocks(t testing.TB, s *harness.S3Server, tenant string) []string {
	t.Helper()
	blocks, err := s.Blocks(tenant)
	require.NoError(t, err)
	out := make([]string, 0, len(blocks))
	for _, b := range blocks {
		out = append(out, b.ULID)
	}
	sort.Strings(out)
	return out
}

// s3ListedBlocks lists the block ULIDs of tenant that have a meta.json, as
// seen through the S3 API (a signed ListObjects), not the disk.
func s3ListedBlocks(t testing.TB, bkt objstore.Bucket, tenant string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var dirs []string
	require.NoError(t, bkt.Iter(ctx, tenant+"/", func(name string) error {
		if id := path.Base(strings.TrimSuffix(name, "/")); ulidRE.MatchString(id) {
			dirs = append(dirs, id)
		}
		return nil
	}))
	var out []string
	for _, id := range dirs {
		ok, err := bkt.Exists(ctx, tenant+"/"+id+"/meta.json")
		require.NoError(t, err)
		if ok {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// pushBlocksMetric pushes one series "blocks_metric", a sample every 15 s
// over the last 5 h, in time order, and returns what checkBlocksData needs.
func pushBlocksMetric(t *testing.T, c *harness.Client) (first, last time.Time, n int, sum float64, pushed sampleSet) {
	t.Helper()
	step := 15 * time.Second
	last = time.Now().Truncate(step)
	first = last.Add(-5 * time.Hour)
	n = int(last.Sub(first)/step) + 1
	pushed = sampleSet{"": {}}
	const batch = 200
	for from := 0; from < n; from += batch {
		samples := make([]prompb.Sample, 0, batch)
		for i := from; i < n && i < from+batch; i++ {
			v := float64(i) * 1.5
			ts := first.Add(time.Duration(i) * step)
			samples = append(samples, harness.Sample(ts, v))
			pushed[""][ts.UnixMilli()] = v
			sum += v
		}
		mustPush(t, c, harness.Series([]string{"__name__", "blocks_metric", "job", "s3"}, samples...))
	}
	return first, last, n, sum, pushed
}

// TestS3BlocksShippedAndQueriedOnce: a monolith on a real S3 server that
// checks signatures ships its blocks there, drops the local copies, and
// answers every sample exactly once from S3, also after a restart.
func TestS3BlocksShippedAndQueriedOnce(t *testing.T) {
	t.Parallel()
	s3 := harness.StartVersityGW(t)
	p := harness.StartMeridian(t, harness.Options{Target: shippingTarget, Args: append(s3.MeridianArgs(),
		"-ingester.ship-interval=1s",
		"-ingester.retention-period=1s",
		"-ingester.head-compaction-interval=1s",
		"-querier.bucket-sync-interval=1s",
	)})
	const tenant = "s3tenant"
	c := p.Client(tenant)

	first, last, n, sum, pushed := pushBlocksMetric(t, c)

	bucketTenantDir := filepath.Join(s3.BucketDir(), tenant)
	requireEventually(t, 2*time.Minute, 200*time.Millisecond, "a block with meta.json in the S3 bucket ("+bucketTenantDir+")", func() bool {
		return len(s3Blocks(t, s3, tenant)) > 0
	})
	localDir := filepath.Join(p.DataDir(), "tsdb", tenant)
	requireEventually(t, 2*time.Minute, 200*time.Millisecond, "the shipped blocks to leave "+localDir, func() bool {
		return len(ulidDirs(t, localDir)) == 0
	})
	t.Logf("blocks in S3: %v", s3Blocks(t, s3, tenant))
	checkBlocksData(t, c, first, last, n, sum, pushed)

	// Flush the rest of the head; it is shipped before the flush answers.
	before := len(s3Blocks(t, s3, tenant))
	code, body := p.PostPath(tenant, "/ingester/flush?wait=true")
	require.Truef(t, code/100 == 2, "POST /ingester/flush?wait=true: HTTP %d: %s", code, body)
	requireEventually(t, time.Minute, 200*time.Millisecond, "the flushed head to be shipped to S3", func() bool {
		return len(s3Blocks(t, s3, tenant)) > before
	})
	checkBlocksData(t, c, first, last, n, sum, pushed)

	// What is on disk is what the S3 API serves, and nothing went to a
	// filesystem bucket by mistake.
	onDisk := s3Blocks(t, s3, tenant)
	require.Equal(t, onDisk, s3ListedBlocks(t, s3.Client(), tenant), "blocks on disk vs. listed over S3")
	require.Empty(t, ulidDirs(t, filepath.Join(p.DataDir(), "bucket", tenant)), "blocks in a local filesystem bucket")
	blocks, err := s3.Blocks(tenant)
	require.NoError(t, err)
	var stored uint64
	for _, b := range blocks {
		stored += b.Stats.NumSamples
	}
	require.EqualValues(t, n, stored, "samples in the S3 blocks' meta.json")

	// After a restart the head is empty: everything comes from S3.
	p.Restart()
	checkBlocksData(t, c, first, last, n, sum, pushed)
	require.Equal(t, onDisk, s3Blocks(t, s3, tenant), "a restart ships no new blocks")
}

// signatureMismatch is the S3 error a wrong secret key gets; Meridian must
// pass it on so an operator can tell a credentials problem at once.
const signatureMismatch = "The request signature we calculated does not match the signature you provided"

// TestS3WrongSecretKey: with a secret key the S3 server rejects, a
// monolith refuses to start and says why (its querier's first bucket sync
// fails with the server's signature error); an ingester alone, which reads
// nothing from the bucket at start, starts but fails every shipment with
// S3's "Access Denied", keeps its block locally and puts nothing in the
// bucket.
func TestS3WrongSecretKey(t *testing.T) {
	t.Parallel()
	s3 := harness.StartVersityGW(t)
	wrong := append(s3.MeridianArgs(), "-blocks-storage.s3.secret-access-key=not-the-secret")

	t.Run("monolith", func(t *testing.T) {
		p := harness.StartMeridian(t, harness.Options{NoWaitReady: true, Args: wrong})
		err := p.ExpectExit(harness.DefaultReadyTimeout)
		require.Error(t, err, "meridian must exit non-zero when object storage rejects its credentials")
		lines := p.LogLines("meridian stopped with an error", "object storage", signatureMismatch)
		require.NotEmptyf(t, lines, "the last log line must name object storage and the signature mismatch; log:\n%s", p.LogTail(20))
		t.Logf("exit: %v; %s", err, lines[0])
	})

	t.Run("ingester", func(t *testing.T) {
		const tenant = "s3badkey"
		c := harness.NewCluster(t, harness.ClusterOptions{ReplicationFactor: 1, Args: wrong})
		ing := c.StartIngester("s3-bad-ing", "zone-1")
		dist := c.StartDistributor(false)
		now := time.Now()
		code, body := dist.Push(tenant, harness.Series([]string{"__name__", "badkey_metric"},
			harness.Sample(now.Add(-time.Minute), 1), harness.Sample(now, 2)))
		requirePushed(t, code, body)

		code, flushBody := ing.PostPath(tenant, "/ingester/flush?wait=true")
		t.Logf("flush answer: HTTP %d: %s", code, flushBody)
		require.Equal(t, 500, code, "a flush that cannot ship must fail")
		// The shipper's first request is a HEAD of the block's meta.json; a
		// HEAD answer has no body, so the client only sees the status:
		// "Access Denied", not the signature message.
		require.Contains(t, string(flushBody), "ship blocks of tenant "+tenant, "the flush error says shipping failed")
		require.Contains(t, string(flushBody), "Access Denied", "the flush error names the S3 refusal")
		requireEventually(t, 30*time.Second, 200*time.Millisecond, "a shipping error naming the S3 refusal in the log", func() bool {
			return len(ing.LogLines("shipping blocks", "Access Denied")) > 0
		})
		require.Empty(t, s3Blocks(t, s3, tenant), "blocks in S3 despite the wrong secret")
		require.NotEmpty(t, ulidDirs(t, filepath.Join(ing.DataDir(), "tsdb", tenant)), "the unshipped block must stay on local disk")
	})
}

// TestS3CompactorDeduplicatesReplicas: TestCompactorDeduplicatesReplicas
// with every process on S3.
func TestS3CompactorDeduplicatesReplicas(t *testing.T) {
	const tenant = "s3compact"
	s3 := harness.StartVersityGW(t)
	c := harness.NewCluster(t, harness.ClusterOptions{Args: s3.MeridianArgs()})
	runCompactorDedup(t, c, tenant, "s3", s3.BucketDir(), s3.Blocks)
	require.Empty(t, ulidDirs(t, filepath.Join(c.BucketDir(), tenant)), "blocks in the filesystem bucket: the cluster must use S3")
	ok, err := s3.Client().Exists(context.Background(), tenant+"/bucket-index.json.gz")
	require.NoError(t, err)
	require.True(t, ok, "the bucket index is served over S3")
}
