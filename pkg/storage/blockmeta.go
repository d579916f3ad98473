package storage

import "github.com/prometheus/prometheus/tsdb"

// MeridianMeta is the Meridian section of a block's meta.json in object
// storage (docs/formats.md): who the block belongs to and who wrote it.
type MeridianMeta struct {
	Tenant   string `json:"tenant"`
	Ingester string `json:"ingester,omitempty"` // set by ingesters, not the compactor
	Source   string `json:"source"`             // "ingester" or "compactor"
}

// BlockMeta is a block's meta.json in object storage: Prometheus'
// tsdb.BlockMeta plus the "meridian" section. Ingesters write it when they
// ship a block, the compactor when it uploads one, and both read it back.
type BlockMeta struct {
	tsdb.BlockMeta
	Meridian MeridianMeta `json:"meridian"`
}
