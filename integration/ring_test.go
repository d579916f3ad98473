package integration

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/integration/harness"
)

// ringWait bounds every wait for gossip or the ring to settle.
const ringWait = 60 * time.Second

// badJoinAddr is a loopback address where nothing listens: joining it fails
// at once with "connection refused".
const badJoinAddr = "127.0.0.99:1"

// aliveMembers returns the gossip addresses of the members p sees alive.
func aliveMembers(p *harness.Process) ([]string, error) {
	ms, err := p.MemberlistMembers()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.State == 0 {
			out = append(out, m.Address())
		}
	}
	sort.Strings(out)
	return out, nil
}

// requireMembers waits until every process sees exactly the processes of
// want alive in its gossip cluster.
func requireMembers(t *testing.T, ps []*harness.Process, want []*harness.Process) {
	t.Helper()
	wantAddrs := make([]string, len(want))
	for i, p := range want {
		wantAddrs[i] = p.MemberlistAddr()
	}
	sort.Strings(wantAddrs)
	for _, p := range ps {
		harness.Eventually(t, ringWait, 200*time.Millisecond, "gossip members of "+p.MemberlistAddr(), func() error {
			got, err := aliveMembers(p)
			if err != nil {
				return err
			}
			if strings.Join(got, ",") != strings.Join(wantAddrs, ",") {
				return fmt.Errorf("alive members %v, want %v", got, wantAddrs)
			}
			return nil
		})
	}
}

// TestMemberlistJoin starts an ingester whose join list holds an address
// where nothing listens and a seed that is not running yet: it must stay up,
// say which address it cannot join and keep retrying, then join the seed once
// the seed starts. Two more ingesters then join through the one seed, and
// every process sees all four in its gossip cluster and its ring.
func TestMemberlistJoin(t *testing.T) {
	t.Parallel()
	c := harness.NewCluster(t, harness.ClusterOptions{ReplicationFactor: 1})
	seedHost := harness.NewHost()
	seedPort := harness.FreePort(t, seedHost)
	c.SetSeed(net.JoinHostPort(seedHost, strconv.Itoa(seedPort)))

	// The join list is "<seed>,127.0.0.99:1" with the seed not started yet.
	lone := c.IngesterOptions("ing-lone", "zone-a")
	lone.Args = append(lone.Args,
		"-memberlist.join="+badJoinAddr,
		"-memberlist.min-join-backoff=200ms",
		"-memberlist.max-join-backoff=1s",
		"-memberlist.max-join-retries=200",
	)
	lone.NoWaitReady = true
	x := c.Start(lone)

	// It keeps retrying, each failure a warning that names the address.
	var failLines []string
	harness.Eventually(t, 30*time.Second, 200*time.Millisecond, "repeated join warnings naming "+badJoinAddr, func() error {
		failLines = x.LogLines("level=warn", "joining memberlist cluster", badJoinAddr)
		if len(failLines) < 3 {
			return fmt.Errorf("%d warnings name %s", len(failLines), badJoinAddr)
		}
		return nil
	})
	t.Logf("%d join retries logged so far; the last: %s", len(failLines), failLines[len(failLines)-1])
	require.True(t, x.Running(), "a process that cannot join its seeds must stay up")
	x.WaitReady(ringWait) // an ingester alone is ACTIVE in its own ring
	members, err := aliveMembers(x)
	require.NoError(t, err)
	require.Equal(t, []string{x.MemberlistAddr()}, members, "before any seed runs, the process knows only itself")

	// The seed starts at the address in the join list; the lone process joins it.
	seedOpts := c.IngesterOptions("ing-seed", "zone-b")
	seedOpts.Host = seedHost
	seedOpts.Args = append(seedOpts.Args, "-memberlist.bind-port="+strconv.Itoa(seedPort))
	seed := c.Start(seedOpts)
	require.Equal(t, c.SeedAddr(), seed.MemberlistAddr())
	joinStart := time.Now()
	requireMembers(t, []*harness.Process{x, seed}, []*harness.Process{x, seed})
	t.Logf("the lone ingester joined the seed %s after it started", time.Since(joinStart).Round(10*time.Millisecond))
	require.True(t, x.Running())

	// Two more ingesters join with the seed as their only peer.
	i2 := c.StartIngester("ing-2", "zone-c")
	i3 := c.StartIngester("ing-3", "zone-a")
	all := []*harness.Process{x, seed, i2, i3}
	requireMembers(t, all, all)
	for _, p := range all {
		harness.Eventually(t, ringWait, 200*time.Millisecond, "the ring seen by "+p.MemberlistAddr(), func() error {
			return harness.RingActiveExactly(p, "ing-lone", "ing-seed", "ing-2", "ing-3")
		})
	}
}

// TestRing checks the /ring page of a three-zone ring: the HTML lists each
// ingester with its zone, the JSON has each member's ID, state, zone and
// tokens; an ingester killed with SIGKILL turns UNHEALTHY after the heartbeat
// timeout, and the page's Forget form removes it from the ring.
func TestRing(t *testing.T) {
	t.Parallel()
	const numTokens = 32
	c := harness.NewCluster(t, harness.ClusterOptions{
		ZoneAwareness:    true,
		HeartbeatTimeout: 5 * time.Second,
		Args:             []string{"-ingester.num-tokens=" + strconv.Itoa(numTokens)},
	})
	ids := []string{"ing-1", "ing-2", "ing-3"}
	zones := map[string]string{"ing-1": "zone-1", "ing-2": "zone-2", "ing-3": "zone-3"}
	ings := map[string]*harness.Process{}
	for _, id := range ids {
		ings[id] = c.StartIngester(id, zones[id])
	}
	for _, id := range ids {
		harness.Eventually(t, ringWait, 200*time.Millisecond, "all three ACTIVE in the ring of "+id, func() error {
			return harness.RingActiveExactly(ings[id], ids...)
		})
	}

	// JSON: id, state, zone, address and tokens of each member.
	ring, err := ings["ing-1"].Ring()
	require.NoError(t, err)
	require.Len(t, ring, len(ids))
	seen := map[uint32]string{}
	for _, id := range ids {
		m := ring[id]
		require.Equal(t, id, m.ID)
		require.Equal(t, "ACTIVE", m.State)
		require.Equal(t, zones[id], m.Zone)
		require.Equal(t, ings[id].GRPCAddr(), m.Address, "the ring advertises the ingester's gRPC address")
		require.Len(t, m.Tokens, numTokens, "tokens of %s", id)
		for _, tok := range m.Tokens {
			require.NotContainsf(t, seen, tok, "token %d owned by %s and %s", tok, seen[tok], id)
			seen[tok] = id
		}
		require.WithinDuration(t, time.Now(), m.Heartbeat, 10*time.Second, "heartbeat of %s", id)
	}

	// HTML: each ID and zone, and a Forget button per row.
	page, err := ings["ing-2"].RingPage()
	require.NoError(t, err)
	for _, id := range ids {
		require.Regexp(t, ringRow(id, zones[id], "ACTIVE"), page)
		require.Contains(t, page, `<button name="forget" value="`+id+`"`)
	}

	// SIGKILL leaves ing-3 in the ring; it turns UNHEALTHY once its last
	// heartbeat is older than the timeout.
	ings["ing-3"].Kill()
	killed := time.Now()
	harness.Eventually(t, ringWait, 200*time.Millisecond, "ing-3 UNHEALTHY on the ring page", func() error {
		page, err := ings["ing-1"].RingPage()
		if err != nil {
			return err
		}
		if !ringRow("ing-3", "zone-3", "UNHEALTHY").MatchString(page) {
			return fmt.Errorf("ing-3 is not shown UNHEALTHY")
		}
		return nil
	})
	unhealthyAfter := time.Since(killed)
	t.Logf("ing-3 was shown UNHEALTHY %s after SIGKILL (heartbeat timeout %s)", unhealthyAfter.Round(10*time.Millisecond), c.HeartbeatTimeout())
	// Heartbeats are stored with second resolution every second, so the
	// last one can be up to 2 s older than the kill.
	require.GreaterOrEqual(t, unhealthyAfter, c.HeartbeatTimeout()-2*time.Second, "UNHEALTHY before the heartbeat timeout")
	ring, err = ings["ing-1"].Ring()
	require.NoError(t, err)
	require.Equal(t, "UNHEALTHY", ring["ing-3"].State)
	require.Equal(t, "ACTIVE", ring["ing-1"].State)
	require.Equal(t, "ACTIVE", ring["ing-2"].State)

	// The Forget button posts forget=<id>; the answer redirects back to the page.
	code, err := ings["ing-1"].ForgetRingMember("ing-3")
	require.NoError(t, err)
	require.Equal(t, 302, code)
	for _, id := range []string{"ing-1", "ing-2"} {
		harness.Eventually(t, ringWait, 200*time.Millisecond, "ing-3 gone from the ring JSON of "+id, func() error {
			ring, err := ings[id].Ring()
			if err != nil {
				return err
			}
			if m, ok := ring["ing-3"]; ok {
				return fmt.Errorf("ing-3 still in the ring as %s: %s", m.State, harness.DescribeRing(ring))
			}
			return harness.RingActiveExactly(ings[id], "ing-1", "ing-2")
		})
	}
	page, err = ings["ing-2"].RingPage()
	require.NoError(t, err)
	require.NotContains(t, page, "<td>ing-3</td>")
}

// ringRow matches the start of a ring page row: ID, zone and state cells.
func ringRow(id, zone, state string) *regexp.Regexp {
	return regexp.MustCompile(`<td>` + regexp.QuoteMeta(id) + `</td>\s*<td>` + regexp.QuoteMeta(zone) + `</td>\s*<td>` + regexp.QuoteMeta(state) + `</td>`)
}
