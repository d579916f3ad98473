package harness

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ClusterOptions configure NewCluster.
type ClusterOptions struct {
	// ReplicationFactor of the ingester ring; 3 when zero.
	ReplicationFactor int
	// ZoneAwareness spreads the replicas of a series over zones.
	ZoneAwareness bool
	// HeartbeatTimeout after which an ingester counts as unhealthy; 5 s
	// when zero. Ingesters heartbeat every second.
	HeartbeatTimeout time.Duration
	// Args are extra flags for every process of the cluster.
	Args []string
}

// Cluster starts meridian processes running separate targets that share one
// ingester ring, gossiped over memberlist, and one filesystem bucket. The
// first process it starts is the gossip seed that every later process joins
// (-memberlist.join): make it one the test never restarts, since a seed
// restarted without peers to join would form a cluster of its own.
type Cluster struct {
	tb   testing.TB
	opts ClusterOptions
	root string // holds bucket/ and tokens/; kept when the test fails
	seed string // gossip host:port of the first process
}

// NewCluster prepares a cluster; it starts nothing.
func NewCluster(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	if opts.ReplicationFactor == 0 {
		opts.ReplicationFactor = 3
	}
	if opts.HeartbeatTimeout == 0 {
		opts.HeartbeatTimeout = 5 * time.Second
	}
	name := unsafeNameChars.ReplaceAllString(tb.Name(), "_")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	root, err := os.MkdirTemp("", "meridian-cluster-"+name+"-")
	if err != nil {
		tb.Fatalf("creating the cluster directory: %v", err)
	}
	for _, d := range []string{"bucket", "tokens"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			tb.Fatalf("creating %s: %v", d, err)
		}
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("cluster: bucket and token files kept in %s", root)
			return
		}
		_ = os.RemoveAll(root)
	})
	return &Cluster{tb: tb, opts: opts, root: root}
}

// BucketDir is the filesystem bucket every process shares.
func (c *Cluster) BucketDir() string { return filepath.Join(c.root, "bucket") }

// SeedAddr is the gossip address later processes join; empty before the
// first start.
func (c *Cluster) SeedAddr() string { return c.seed }

// HeartbeatTimeout is the ring's heartbeat timeout.
func (c *Cluster) HeartbeatTimeout() time.Duration { return c.opts.HeartbeatTimeout }

// SetSeed makes addr (host:port) the gossip seed later processes join, for
// a test that starts the seed itself later, or never.
func (c *Cluster) SetSeed(addr string) { c.seed = addr }

// NewHost returns a loopback address no other process of this test binary
// was given.
func NewHost() string { return nextHost() }

// RingArgs are the ring, gossip and storage flags every process gets.
func (c *Cluster) RingArgs() []string {
	ht := c.opts.HeartbeatTimeout.String()
	args := []string{
		"-ingester.distributor.replication-factor=" + strconv.Itoa(c.opts.ReplicationFactor),
		"-ingester.distributor.zone-awareness-enabled=" + strconv.FormatBool(c.opts.ZoneAwareness),
		"-ingester.heartbeat-period=1s",
		"-ingester.heartbeat-timeout=" + ht,
		"-ingester.ring.heartbeat-timeout=" + ht,
		"-blocks-storage.filesystem.dir=" + c.BucketDir(),
	}
	if c.seed != "" {
		args = append(args, "-memberlist.join="+c.seed)
	}
	return append(args, c.opts.Args...)
}

// Start starts a process with the cluster's flags before opts.Args. The
// first process started becomes the seed; the seed itself (opts.Host and a
// -memberlist.bind-port in opts.Args naming the seed address) joins nobody.
func (c *Cluster) Start(opts Options) *Process {
	c.tb.Helper()
	ring := c.RingArgs()
	if c.seed != "" && opts.Host != "" {
		for _, a := range opts.Args {
			if port, ok := strings.CutPrefix(a, "-memberlist.bind-port="); ok && net.JoinHostPort(opts.Host, port) == c.seed {
				ring = slices.DeleteFunc(ring, func(a string) bool { return strings.HasPrefix(a, "-memberlist.join=") })
			}
		}
	}
	opts.Args = append(ring, opts.Args...)
	p := StartMeridian(c.tb, opts)
	if c.seed == "" {
		c.seed = p.MemberlistAddr()
	}
	return p
}

// IngesterOptions are the options of an ingester with ring ID id in zone
// that keeps its tokens in the cluster directory and ships every second;
// adjust them and pass them to Start.
func (c *Cluster) IngesterOptions(id, zone string) Options {
	return Options{Target: "ingester", Name: id, Args: []string{
		"-ingester.lifecycler.ID=" + id,
		"-ingester.availability-zone=" + zone,
		"-ingester.tokens-file-path=" + filepath.Join(c.root, "tokens", id),
		"-ingester.ship-interval=1s",
		"-ingester.head-compaction-interval=1s",
	}}
}

// StartIngester starts an ingester with IngesterOptions and waits until it
// is ready (ACTIVE in its ring). Each call starts a new process with an
// empty data directory.
func (c *Cluster) StartIngester(id, zone string, extra ...string) *Process {
	c.tb.Helper()
	opts := c.IngesterOptions(id, zone)
	opts.Args = append(opts.Args, extra...)
	return c.Start(opts)
}

// StartZonedIngesters starts n ingesters "<prefix>-ing-1" … in zones
// "zone-1" … with the same extra flags, and returns them with their IDs.
func (c *Cluster) StartZonedIngesters(prefix string, n int, extra ...string) ([]*Process, []string) {
	c.tb.Helper()
	var ingesters []*Process
	var ids []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%s-ing-%d", prefix, i)
		ids = append(ids, id)
		ingesters = append(ingesters, c.StartIngester(id, fmt.Sprintf("zone-%d", i), extra...))
	}
	return ingesters, ids
}

// StartDistributor starts a distributor. noWait returns before /ready (a
// distributor is ready only once a healthy ingester is in its ring).
func (c *Cluster) StartDistributor(noWait bool, extra ...string) *Process {
	c.tb.Helper()
	return c.Start(Options{Target: "distributor", Name: "distributor", NoWaitReady: noWait, Args: extra})
}

// StartQuerier starts a querier with an in-process store-gateway, both
// syncing the bucket every second.
func (c *Cluster) StartQuerier(extra ...string) *Process {
	c.tb.Helper()
	args := append([]string{"-querier.bucket-sync-interval=1s", "-store-gateway.sync-interval=1s"}, extra...)
	q := c.Start(Options{Target: "querier,store-gateway", Name: "querier", Args: args})
	// Ready does not wait for the store-gateway to be ACTIVE in its ring;
	// until it is, a query over shipped blocks finds no owner (503).
	Eventually(c.tb, 30*time.Second, 100*time.Millisecond, "the querier's store-gateway ACTIVE in its ring", func() error {
		members, err := q.RingAt("/store-gateway/ring")
		if err != nil {
			return err
		}
		for _, m := range members {
			if m.State == "ACTIVE" {
				return nil
			}
		}
		return fmt.Errorf("no ACTIVE store-gateway: %s", DescribeRing(members))
	})
	return q
}

// RingActiveExactly returns nil when p's ring shows exactly ids as healthy
// ACTIVE members and any other member as LEFT, and otherwise an error that
// describes the ring.
func RingActiveExactly(p *Process, ids ...string) error {
	ring, err := p.Ring()
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var problems []string
	for _, id := range ids {
		m, ok := ring[id]
		switch {
		case !ok:
			problems = append(problems, id+" missing")
		case m.State != "ACTIVE":
			problems = append(problems, id+" is "+m.State)
		}
	}
	for id, m := range ring {
		if !want[id] && m.State != "LEFT" {
			problems = append(problems, fmt.Sprintf("unexpected %s (%s)", id, m.State))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return fmt.Errorf("ring of %s: %s; ring: %s", p.opts.Name, strings.Join(problems, ", "), DescribeRing(ring))
}

// DescribeRing renders members as "id(zone)=STATE" in ID order.
func DescribeRing(ring map[string]RingMember) string {
	ids := make([]string, 0, len(ring))
	for id := range ring {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s(%s)=%s", id, ring[id].Zone, ring[id].State)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// BucketBlock is what a shipped block's meta.json says about it.
type BucketBlock struct {
	ULID    string `json:"ulid"`
	MinTime int64  `json:"minTime"`
	MaxTime int64  `json:"maxTime"`
	Stats   struct {
		NumSamples uint64 `json:"numSamples"`
		NumSeries  uint64 `json:"numSeries"`
	} `json:"stats"`
	Meridian struct {
		Tenant   string `json:"tenant"`
		Ingester string `json:"ingester"`
	} `json:"meridian"`
}

// BucketBlocks lists the complete blocks (those with a meta.json that
// decodes) of tenant in the shared bucket.
func (c *Cluster) BucketBlocks(tenant string) ([]BucketBlock, error) {
	metas, err := filepath.Glob(filepath.Join(c.BucketDir(), tenant, "*", "meta.json"))
	if err != nil {
		return nil, err
	}
	out := make([]BucketBlock, 0, len(metas))
	for _, m := range metas {
		data, err := os.ReadFile(m)
		if os.IsNotExist(err) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		var b BucketBlock
		if err := json.Unmarshal(data, &b); err != nil {
			// The filesystem bucket writes in place: a meta.json that does
			// not decode is being written, or was cut short by a killed
			// uploader. Readers skip such a block, and so does this.
			continue
		}
		out = append(out, b)
	}
	return out, nil
}
