// Package compactor merges the blocks the ingesters ship to object storage:
// it deduplicates the replicas' overlapping blocks (vertical compaction),
// compacts adjacent blocks into bigger ranges, applies per-tenant
// retention, deletes tenants on request and keeps a bucket index per
// tenant.
package compactor

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// DurationList is a list of durations, written as a comma-separated list
// on the command line ("2h,12h,24h") and as a YAML list.
type DurationList []time.Duration

// String implements flag.Value.
func (d *DurationList) String() string {
	if d == nil {
		return ""
	}
	parts := make([]string, 0, len(*d))
	for _, v := range *d {
		parts = append(parts, v.String())
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (d *DurationList) Set(s string) error {
	var out DurationList
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		v, err := time.ParseDuration(p)
		if err != nil {
			return fmt.Errorf("parse duration %q: %w", p, err)
		}
		out = append(out, v)
	}
	*d = out
	return nil
}

// Config configures the compactor.
type Config struct {
	// DataDir is the compactor's working directory: blocks are downloaded
	// and compacted there. Empty means <data-dir>/compactor; the caller
	// fills it in.
	DataDir            string        `yaml:"data_dir"`
	CompactionInterval time.Duration `yaml:"compaction_interval"`
	BlockRanges        DurationList  `yaml:"block_ranges" category:"advanced"`
	DeletionDelay      time.Duration `yaml:"deletion_delay" category:"advanced"`
	TenantCleanupDelay time.Duration `yaml:"tenant_cleanup_delay" category:"advanced"`
	// PartialBlockDeletionDelay: see RegisterFlags.
	PartialBlockDeletionDelay time.Duration `yaml:"partial_block_deletion_delay" category:"advanced"`
	// TenantConcurrency: see RegisterFlags.
	TenantConcurrency int        `yaml:"tenant_concurrency" category:"advanced"`
	Ring              RingConfig `yaml:"ring"`
}

// RegisterFlags registers the compactor flags under -compactor.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	const p = "compactor."
	c.Ring.RegisterFlags(f)
	f.StringVar(&c.DataDir, p+"data-dir", "", "Working directory of the compactor: blocks are downloaded and compacted there. Empty means <data-dir>/compactor.")
	f.DurationVar(&c.CompactionInterval, p+"compaction-interval", time.Hour, "How often the compactor runs over every tenant. It also runs once at start.")
	c.BlockRanges = DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	f.Var(&c.BlockRanges, p+"block-ranges", "Comma-separated block ranges, smallest first, each a multiple of the one before. The first is the range of the ingesters' blocks; adjacent blocks are compacted into the next range once it is complete.")
	f.DurationVar(&c.DeletionDelay, p+"deletion-delay", 12*time.Hour, "How long a block stays in object storage after it was marked for deletion (compacted into another block, or past retention), so that readers that still use it can finish.")
	f.DurationVar(&c.PartialBlockDeletionDelay, p+"partial-block-deletion-delay", 24*time.Hour, "A block without a readable meta.json (an upload cut short by a killed ingester or compactor) is deleted once none of its objects was written for this long. Keep it well above the longest block upload. 0 keeps partial blocks forever.")
	f.IntVar(&c.TenantConcurrency, p+"tenant-concurrency", 1, "How many tenants a compactor run processes at the same time (0 means 1). Each one in progress may download and compact a group of blocks in the data directory at once.")
	f.DurationVar(&c.TenantCleanupDelay, p+"tenant-cleanup-delay", 6*time.Hour, "For a tenant marked for deletion: how long after its last block was deleted the compactor keeps deleting newly shipped blocks before it removes the tenant deletion mark.")
}

// Validate checks the configuration.
// The ring settings are checked by NewRing.
func (c *Config) Validate() error {
	if c.CompactionInterval <= 0 {
		return fmt.Errorf("compaction interval must be positive, got %s", c.CompactionInterval)
	}
	if len(c.BlockRanges) == 0 {
		return errors.New("block ranges are empty: give at least one, e.g. -compactor.block-ranges=2h,12h,24h")
	}
	for i, r := range c.BlockRanges {
		if r <= 0 || r%time.Millisecond != 0 {
			return fmt.Errorf("block range %s must be a positive whole number of milliseconds", r)
		}
		if i > 0 {
			prev := c.BlockRanges[i-1]
			if r <= prev || r%prev != 0 {
				return fmt.Errorf("block range %s must be larger than and a multiple of the range before it, %s", r, prev)
			}
		}
	}
	if c.TenantConcurrency < 0 {
		return fmt.Errorf("compactor tenant concurrency must not be negative (0 means 1), got %d", c.TenantConcurrency)
	}
	if c.DeletionDelay < 0 {
		return fmt.Errorf("deletion delay must not be negative, got %s", c.DeletionDelay)
	}
	if c.PartialBlockDeletionDelay < 0 {
		return fmt.Errorf("partial block deletion delay must not be negative, got %s", c.PartialBlockDeletionDelay)
	}
	if c.TenantCleanupDelay < 0 {
		return fmt.Errorf("tenant cleanup delay must not be negative, got %s", c.TenantCleanupDelay)
	}
	return nil
}

// rangesMillis returns the block ranges in milliseconds, the unit of block
// times.
func (c *Config) rangesMillis() []int64 {
	out := make([]int64, len(c.BlockRanges))
	for i, r := range c.BlockRanges {
		out[i] = r.Milliseconds()
	}
	return out
}
