// Package meridian wires the components into one binary: the top-level
// Config, the module graph and the run loop.
package meridian

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/server"
	"gopkg.in/yaml.v3"

	"github.com/meridianhq/meridian/pkg/alertmanager"
	"github.com/meridianhq/meridian/pkg/compactor"
	"github.com/meridianhq/meridian/pkg/distributor"
	"github.com/meridianhq/meridian/pkg/frontend"
	"github.com/meridianhq/meridian/pkg/graphite"
	"github.com/meridianhq/meridian/pkg/ingester"
	ingclient "github.com/meridianhq/meridian/pkg/ingester/client"
	"github.com/meridianhq/meridian/pkg/limits"
	"github.com/meridianhq/meridian/pkg/querier"
	"github.com/meridianhq/meridian/pkg/querier/httpapi"
	"github.com/meridianhq/meridian/pkg/querier/worker"
	"github.com/meridianhq/meridian/pkg/ruler"
	"github.com/meridianhq/meridian/pkg/storage"
	"github.com/meridianhq/meridian/pkg/storegateway"
	sgclient "github.com/meridianhq/meridian/pkg/storegateway/client"
	"github.com/meridianhq/meridian/pkg/tenant"
	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

// CommonConfig holds settings several components share.
type CommonConfig struct {
	DataDir string           `yaml:"data_dir"`
	Ring    CommonRingConfig `yaml:"ring"`
}

// CommonRingConfig is what every ring of the process shares: the
// ingester, distributor, store-gateway and compactor rings all live in
// this one KV store, each under its own key.
type CommonRingConfig struct {
	KVStore kv.Config `yaml:"kvstore"`
}

// RegisterFlags registers the common flags.
func (c *CommonConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.DataDir, "common.data-dir", "./data", "Directory for all local state: TSDBs under tsdb/, the filesystem bucket under bucket/, the store-gateway's index headers under store-gateway/.")
	// Rings gossip over memberlist unless this is a single process (see
	// ApplyDerivedDefaults), which uses an in-memory ring.
	c.Ring.KVStore.Store = "memberlist"
	c.Ring.KVStore.RegisterFlagsWithPrefix("common.ring.", "collectors/", f)
}

// Config is the whole configuration of a Meridian process.
type Config struct {
	Target flagext.StringSliceCSV `yaml:"target"`

	Common         CommonConfig           `yaml:"common"`
	Server         server.Config          `yaml:"server"`
	MemberlistKV   memberlist.KVConfig    `yaml:"memberlist"`
	Auth           tenant.Config          `yaml:"auth"`
	Limits         limits.Limits          `yaml:"limits"`
	RuntimeConfig  limits.OverridesConfig `yaml:"runtime_config"`
	BlocksStorage  storage.Config         `yaml:"blocks_storage"`
	Distributor    distributor.Config     `yaml:"distributor"`
	Ingester       ingester.Config        `yaml:"ingester"`
	IngesterClient ingclient.Config       `yaml:"ingester_client"`
	Querier        querier.Config         `yaml:"querier"`
	API            httpapi.Config         `yaml:"prometheus_api"`
	Frontend       frontend.Config        `yaml:"frontend"`
	QuerierWorker  worker.Config          `yaml:"querier_worker"`
	Compactor      compactor.Config       `yaml:"compactor"`
	Graphite       graphite.Config        `yaml:"graphite"`
	StoreGateway   storegateway.Config    `yaml:"store_gateway"`
	// StoreGatewayClient configures the queriers' connections to store-gateways.
	StoreGatewayClient sgclient.ClientConfig `yaml:"store_gateway_client"`
	Ruler              ruler.Config          `yaml:"ruler"`
	Alertmanager       alertmanager.Config   `yaml:"alertmanager"`

	// The KV configs as registered, to tell which ones were set.
	commonKVDefault, ingesterKVDefault kv.Config
	// logger reports deprecated settings while the config is resolved.
	logger log.Logger
}

// RegisterFlags registers every flag with its default.
func (c *Config) RegisterFlags(f *flag.FlagSet, logger log.Logger) {
	c.Target = []string{All}
	c.logger = logger
	f.Var(&c.Target, "target", "Comma-separated list of modules to run: all, write (distributor+ingester), read (querier), backend (store-gateway+compactor), distributor, ingester, querier, query-frontend, query-scheduler, compactor, store-gateway, ruler, alertmanager. Internal modules they depend on start with them.")
	c.Common.RegisterFlags(f)
	c.commonKVDefault = c.Common.Ring.KVStore
	c.Server.RegisterFlags(f)
	c.MemberlistKV.RegisterFlags(f)
	c.Auth.RegisterFlags(f)
	c.Limits.RegisterFlags(f)
	c.RuntimeConfig.RegisterFlags(f)
	c.BlocksStorage.RegisterFlags(f)
	c.Distributor.RegisterFlags(f)
	// The ingester ring's own KV settings (-ingester.store, ...) are a
	// deprecated alias of -common.ring.*; see resolveRingKV.
	c.Ingester.Lifecycler.RingConfig.KVStore.Store = "memberlist"
	c.Ingester.RegisterFlags(f, logger)
	c.ingesterKVDefault = c.Ingester.Lifecycler.RingConfig.KVStore
	c.IngesterClient.RegisterFlags(f)
	c.Querier.RegisterFlags(f)
	c.API.RegisterFlags(f)
	c.Frontend.RegisterFlags(f)
	c.QuerierWorker.RegisterFlags(f)
	c.Compactor.RegisterFlags(f)
	c.Graphite.RegisterFlags(f)
	c.StoreGateway.RegisterFlags(f)
	c.StoreGatewayClient.RegisterFlags(f)
	c.Ruler.RegisterFlags(f)
	c.Alertmanager.RegisterFlags(f)

	setDefault(f, "server.http-listen-port", "8080")
	setDefault(f, "server.grpc-listen-port", "9095")
	// Our gRPC clients send keepalive pings every 10s even between streams;
	// dskit's server defaults would answer them with GOAWAY too_many_pings.
	setDefault(f, "server.grpc.keepalive.min-time-between-pings", "10s")
	setDefault(f, "server.grpc.keepalive.ping-without-stream-allowed", "true")
	setDefault(f, "ingester.distributor.replication-factor", "1")
	setDefault(f, "ingester.min-ready-duration", "0s")
	setDefault(f, "ingester.final-sleep", "0s")
	c.Server.MetricsNamespace = "meridian"
}

// setDefault changes a flag's default (value and the one -help prints).
func setDefault(f *flag.FlagSet, name, value string) {
	fl := f.Lookup(name)
	if fl == nil {
		panic("no flag " + name)
	}
	if err := fl.Value.Set(value); err != nil {
		panic(fmt.Sprintf("default of -%s: %v", name, err))
	}
	fl.DefValue = value
}

// Validate checks the whole configuration, naming the component at fault.
func (c *Config) Validate() error {
	if len(c.Target) == 0 {
		return errors.New("-target is empty: name at least one module, e.g. -target=all")
	}
	checks := []struct {
		name string
		fn   func() error
	}{
		{"limits", c.Limits.Validate},
		{"auth", c.Auth.Validate},
		{"blocks_storage", c.BlocksStorage.Validate},
		{"distributor", c.Distributor.Validate},
		{"ingester", c.Ingester.Validate},
		{"ingester ring", c.Ingester.Lifecycler.Validate},
		{"ingester_client", c.IngesterClient.Validate},
		{"querier", c.Querier.Validate},
		{"prometheus_api", c.API.Validate},
		{"frontend", c.Frontend.Validate},
		{"querier_worker", c.QuerierWorker.Validate},
		{"compactor", c.Compactor.Validate},
		{"graphite", c.Graphite.Validate},
		{"store_gateway", c.StoreGateway.Validate},
		{"store_gateway_client", c.StoreGatewayClient.Validate},
		{"ruler", c.Ruler.Validate},
		{"alertmanager", c.Alertmanager.Validate},
	}
	for _, ch := range checks {
		if err := ch.fn(); err != nil {
			return fmt.Errorf("invalid %s config: %w", ch.name, err)
		}
	}
	return nil
}

// ApplyDerivedDefaults fills paths left empty from the common data dir.
func (c *Config) ApplyDerivedDefaults() {
	if c.Ingester.TSDBDir == "" {
		c.Ingester.TSDBDir = filepath.Join(c.Common.DataDir, "tsdb")
	}
	if c.BlocksStorage.Filesystem.Dir == "" {
		c.BlocksStorage.Filesystem.Dir = filepath.Join(c.Common.DataDir, "bucket")
	}
	if c.Compactor.DataDir == "" {
		c.Compactor.DataDir = filepath.Join(c.Common.DataDir, "compactor")
	}
	if c.StoreGateway.DataDir == "" {
		c.StoreGateway.DataDir = filepath.Join(c.Common.DataDir, "store-gateway")
	}
	c.resolveRingKV()
	lc := &c.Ingester.Lifecycler
	lc.ResolveDeprecated(c.warn)
	if lc.InstanceAddr == "" {
		switch {
		case c.Server.GRPCListenAddress != "" && c.Server.GRPCListenAddress != "0.0.0.0" && c.Server.GRPCListenAddress != "::":
			lc.InstanceAddr = c.Server.GRPCListenAddress
		case lc.RingConfig.KVStore.Store == "inmemory":
			// One process: the ingester is reached on loopback.
			lc.InstanceAddr = "127.0.0.1"
		}
	}
	// Every ring advertises the gRPC port and the other rings the
	// ingester's address, unless told otherwise.
	for _, r := range []*ringutil.Config{&lc.Config, &c.Compactor.Ring.Config, &c.StoreGateway.Ring.Config, &c.Distributor.Ring, &c.Ruler.Ring.Config} {
		if r.InstanceAddr == "" {
			r.InstanceAddr = lc.InstanceAddr
		}
		if r.InstancePort == 0 {
			r.InstancePort = c.Server.GRPCListenPort
		}
	}
}

// resolveRingKV settles the one KV store of every ring: -common.ring.*
// (common.ring.kvstore), or the deprecated ingester ring KV settings
// (-ingester.store, -ingester.consul.*, ..., ingester.lifecycler.ring.kvstore)
// when only those were set. The ingester's lifecycler is given the result.
func (c *Config) resolveRingKV() {
	common := &c.Common.Ring.KVStore
	if ing := c.Ingester.Lifecycler.RingConfig.KVStore; !reflect.DeepEqual(ing, c.ingesterKVDefault) {
		if reflect.DeepEqual(*common, c.commonKVDefault) {
			*common = ing
			c.warn("the ingester ring KV settings (-ingester.store, -ingester.consul.*, -ingester.etcd.*, -ingester.multi.*, -ingester.prefix; YAML ingester.lifecycler.ring.kvstore) are deprecated; they still apply to every ring; use -common.ring.* (YAML common.ring.kvstore) instead")
		} else {
			c.warn("both the deprecated ingester ring KV settings and -common.ring.* are set; every ring uses -common.ring.* (YAML common.ring.kvstore), the ingester ring KV settings are ignored")
		}
	}
	if common.Store == "memberlist" && len(c.MemberlistKV.JoinMembers) == 0 && len(c.Target) == 1 && c.Target[0] == All {
		// One process and no peers to join: nothing to gossip with.
		common.Store = "inmemory"
	}
	c.Ingester.Lifecycler.RingConfig.KVStore = *common
}

func (c *Config) warn(msg string) {
	if c.logger != nil {
		level.Warn(c.logger).Log("msg", msg)
	}
}

// configFileFromArgs finds -config.file in the arguments before flags are
// parsed, so the YAML can be applied between the defaults and the flags.
func configFileFromArgs(args []string) string {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config.file" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// LoadYAML applies a YAML file over the current values. Unknown fields are
// an error that names them.
func (c *Config) LoadYAML(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// ParseArgs builds the configuration: flag defaults, then the YAML file,
// then the flags again so they win.
func ParseArgs(fs *flag.FlagSet, args []string, cfg *Config) error {
	// -config.file is parsed like any other flag; it is read first.
	var configFile string
	fs.StringVar(&configFile, "config.file", "", "YAML configuration file. Flags given on the command line override its values.")
	if path := configFileFromArgs(args); path != "" {
		if err := cfg.LoadYAML(path); err != nil {
			return err
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v: every setting is a -flag", fs.Args())
	}
	cfg.ApplyDerivedDefaults()
	return nil
}
