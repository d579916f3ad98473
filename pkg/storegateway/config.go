// Package storegateway serves the blocks in object storage over gRPC
// (-target=store-gateway). Blocks are sharded across store-gateways by a
// ring with replication; each store-gateway loads the blocks it is asked
// for lazily, keeps a compact index header per block on local disk and in
// memory, and reads postings, series and chunks with ranged GETs through
// a page cache (in-memory LRU or memcached).
package storegateway

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/grafana/dskit/flagext"
)

// Config configures the store-gateway.
type Config struct {
	// DataDir holds the index headers. Empty means <data-dir>/store-gateway;
	// the caller fills it in.
	DataDir                  string        `yaml:"data_dir"`
	SyncInterval             time.Duration `yaml:"sync_interval"`
	MaxLoadedBytes           flagext.Bytes `yaml:"max_loaded_index_header_bytes"`
	IgnoreDeletionMarksDelay time.Duration `yaml:"ignore_deletion_marks_delay" category:"advanced"`
	Cache                    CacheConfig   `yaml:"cache"`
	Ring                     RingConfig    `yaml:"ring"`
}

// RegisterFlags registers the store-gateway flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.DataDir, "store-gateway.data-dir", "", "Directory of the index headers the store-gateway keeps on local disk. Empty means <data-dir>/store-gateway.")
	f.DurationVar(&c.SyncInterval, "store-gateway.sync-interval", 5*time.Minute, "How often the store-gateway lists object storage and reads the tenants' bucket indexes, to drop blocks that are gone or no longer its own.")
	c.MaxLoadedBytes = 1 << 30
	f.Var(&c.MaxLoadedBytes, "store-gateway.max-loaded-index-header-bytes", "Memory budget of loaded index headers; beyond it the least recently queried blocks are unloaded (their headers stay on local disk).")
	f.DurationVar(&c.IgnoreDeletionMarksDelay, "store-gateway.ignore-deletion-marks-delay", time.Hour, "Blocks marked for deletion longer ago than this are dropped from memory and local disk at the next sync. Use the same value as -querier.ignore-deletion-marks-delay.")
	c.Cache.RegisterFlags(f)
	c.Ring.RegisterFlags(f)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.SyncInterval <= 0 {
		return fmt.Errorf("store-gateway sync interval must be positive, got %s", c.SyncInterval)
	}
	if c.MaxLoadedBytes <= 0 {
		return errors.New("store-gateway max loaded index header bytes must be positive")
	}
	if c.IgnoreDeletionMarksDelay < 0 {
		return fmt.Errorf("store-gateway ignore deletion marks delay must not be negative, got %s", c.IgnoreDeletionMarksDelay)
	}
	if err := c.Cache.Validate(); err != nil {
		return err
	}
	return c.Ring.Validate()
}
