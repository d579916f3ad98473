package meridian

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/meridianhq/meridian/pkg/util/ringutil"
)

func newFlagSet(cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("meridian", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	cfg.RegisterFlags(fs, log.NewNopLogger())
	return fs
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestDefaults(t *testing.T) {
	var cfg Config
	require.NoError(t, ParseArgs(newFlagSet(&cfg), nil, &cfg))
	require.NoError(t, cfg.Validate())
	require.Equal(t, []string{"all"}, []string(cfg.Target))
	require.Equal(t, 8080, cfg.Server.HTTPListenPort)
	require.Equal(t, 9095, cfg.Server.GRPCListenPort)
	require.Equal(t, "./data", cfg.Common.DataDir)
	require.Equal(t, filepath.Join("data", "tsdb"), filepath.Clean(cfg.Ingester.TSDBDir))
	require.Equal(t, filepath.Join("data", "bucket"), filepath.Clean(cfg.BlocksStorage.Filesystem.Dir))
	require.Equal(t, "filesystem", cfg.BlocksStorage.Backend)
	require.Equal(t, "inmemory", cfg.Ingester.Lifecycler.RingConfig.KVStore.Store)
	require.Equal(t, 1, cfg.Ingester.Lifecycler.RingConfig.ReplicationFactor)
	require.True(t, cfg.Auth.MultitenancyEnabled)
	require.Equal(t, "127.0.0.1", cfg.Ingester.Lifecycler.InstanceAddr)
}

func TestYAMLThenFlags(t *testing.T) {
	path := writeFile(t, "common:\n  data_dir: /var/lib/meridian\nserver:\n  http_listen_port: 9000\nlimits:\n  max_label_names_per_series: 12\n")
	var cfg Config
	require.NoError(t, ParseArgs(newFlagSet(&cfg), []string{"-config.file", path, "-server.http-listen-port=9100"}, &cfg))
	require.Equal(t, "/var/lib/meridian", cfg.Common.DataDir, "YAML overrides defaults")
	require.Equal(t, 9100, cfg.Server.HTTPListenPort, "flags override YAML")
	require.Equal(t, 12, cfg.Limits.MaxLabelNamesPerSeries)
	require.Equal(t, "/var/lib/meridian/tsdb", cfg.Ingester.TSDBDir)
}

func TestUnknownYAMLFieldIsNamed(t *testing.T) {
	path := writeFile(t, "server:\n  http_listen_prot: 9000\n")
	var cfg Config
	err := ParseArgs(newFlagSet(&cfg), []string{"-config.file=" + path}, &cfg)
	require.Error(t, err)
	require.Contains(t, err.Error(), "http_listen_prot")
}

func TestInvalidConfigNamesComponent(t *testing.T) {
	var cfg Config
	require.NoError(t, ParseArgs(newFlagSet(&cfg), []string{"-ingester.ship-interval=0s"}, &cfg))
	err := cfg.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "ingester")
}

func TestHelpListsEveryFlagWithDefault(t *testing.T) {
	var cfg Config
	fs := newFlagSet(&cfg)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	help := out.String()
	for _, name := range []string{"target", "common.data-dir", "server.http-listen-port", "auth.multitenancy-enabled",
		"ingester.ship-interval", "ingester.retention-period", "querier.bucket-sync-interval", "distributor.max-recv-msg-size",
		"runtime-config.file", "blocks-storage.backend", "querier.max-samples", "validation.max-label-names-per-series"} {
		require.Regexp(t, `(?m)^  -`+regexp.QuoteMeta(name)+`( |$)`, help, "flag %s missing from -help", name)
	}
	require.True(t, strings.Contains(help, `(default 8080)`), "defaults are printed")
}

func TestConfigFileFromArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-config.file=a.yaml"}, "a.yaml"},
		{[]string{"--config.file", "b.yaml"}, "b.yaml"},
		{[]string{"-target=all"}, ""},
	} {
		require.Equal(t, tc.want, configFileFromArgs(tc.args), tc.args)
	}
}

// TestDocumentedConfigParses keeps the example in docs/configuration.md
// honest: its first YAML block must load strictly and validate.
func TestDocumentedConfigParses(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	require.True(t, ok, "docs/configuration.md has a yaml block")
	block, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	path := writeFile(t, block)
	var cfg Config
	require.NoError(t, ParseArgs(newFlagSet(&cfg), []string{"-config.file=" + path}, &cfg))
	require.NoError(t, cfg.Validate())
}

// TestRingKVIsShared: every ring uses common.ring.kvstore; the ingester
// ring's own KV settings are a deprecated alias that logs a warning.
func TestRingKVIsShared(t *testing.T) {
	cluster := []string{"-target=ingester", "-memberlist.join=peer:7946"}
	for _, tc := range []struct {
		name      string
		yaml      string
		args      []string
		wantStore string
		wantHost  string
		wantWarn  string
	}{
		{name: "defaults", args: cluster, wantStore: "memberlist"},
		{name: "common flag", args: append([]string{"-common.ring.store=consul", "-common.ring.consul.hostname=c:8500"}, cluster...), wantStore: "consul", wantHost: "c:8500"},
		{name: "common YAML", yaml: "common:\n  ring:\n    kvstore:\n      store: consul\n      consul:\n        host: c:8500\n", args: cluster, wantStore: "consul", wantHost: "c:8500"},
		{name: "deprecated ingester flags", args: append([]string{"-ingester.store=consul", "-ingester.consul.hostname=old:8500"}, cluster...), wantStore: "consul", wantHost: "old:8500", wantWarn: "deprecated"},
		{name: "deprecated ingester YAML", yaml: "ingester:\n  lifecycler:\n    ring:\n      kvstore:\n        store: etcd\n", args: cluster, wantStore: "etcd", wantWarn: "deprecated"},
		{name: "common wins over the deprecated flags", args: append([]string{"-common.ring.store=etcd", "-ingester.store=consul"}, cluster...), wantStore: "etcd", wantWarn: "ignored"},
		{name: "single process", wantStore: "inmemory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			var logs bytes.Buffer
			fs := flag.NewFlagSet("meridian", flag.ContinueOnError)
			cfg.RegisterFlags(fs, log.NewLogfmtLogger(&logs))
			args := tc.args
			if tc.yaml != "" {
				args = append([]string{"-config.file=" + writeFile(t, tc.yaml)}, args...)
			}
			require.NoError(t, ParseArgs(fs, args, &cfg))
			require.NoError(t, cfg.Validate())
			require.Equal(t, tc.wantStore, cfg.Common.Ring.KVStore.Store)
			require.Equal(t, cfg.Common.Ring.KVStore, cfg.Ingester.Lifecycler.RingConfig.KVStore, "the ingester's lifecycler uses the common KV store")
			if tc.wantHost != "" {
				require.Equal(t, tc.wantHost, cfg.Common.Ring.KVStore.Consul.Host)
			}
			if tc.wantWarn == "" {
				require.Empty(t, logs.String())
			} else {
				require.Contains(t, logs.String(), "level=warn")
				require.Contains(t, logs.String(), tc.wantWarn)
			}
		})
	}
}

// TestRingYAMLKeysUnchanged: the rings' YAML keys are those of before the
// ring settings moved into one type.
func TestRingYAMLKeysUnchanged(t *testing.T) {
	path := writeFile(t, `
distributor:
  ring:
    heartbeat_period: 2s
    heartbeat_timeout: 20s
    instance_id: d1
    instance_addr: 10.0.0.1
    instance_port: 1234
compactor:
  ring:
    heartbeat_period: 3s
    heartbeat_timeout: 30s
    num_tokens: 64
    instance_id: c1
    instance_addr: 10.0.0.2
    instance_port: 2345
    wait_active_timeout: 5s
store_gateway:
  ring:
    replication_factor: 2
    heartbeat_period: 4s
    heartbeat_timeout: 40s
    num_tokens: 32
    instance_id: s1
    instance_addr: 10.0.0.3
    instance_port: 3456
`)
	var cfg Config
	require.NoError(t, ParseArgs(newFlagSet(&cfg), []string{"-config.file=" + path, "-compactor.ring.num-tokens=65"}, &cfg))
	require.NoError(t, cfg.Validate())
	require.Equal(t, ringutil.Config{HeartbeatPeriod: 2 * time.Second, HeartbeatTimeout: 20 * time.Second, NumTokens: 1, InstanceID: "d1", InstanceAddr: "10.0.0.1", InstancePort: 1234}, cfg.Distributor.Ring)
	require.Equal(t, ringutil.Config{HeartbeatPeriod: 3 * time.Second, HeartbeatTimeout: 30 * time.Second, NumTokens: 65, InstanceID: "c1", InstanceAddr: "10.0.0.2", InstancePort: 2345}, cfg.Compactor.Ring.Config)
	require.Equal(t, 5*time.Second, cfg.Compactor.Ring.WaitActiveTimeout)
	require.Equal(t, ringutil.Config{HeartbeatPeriod: 4 * time.Second, HeartbeatTimeout: 40 * time.Second, NumTokens: 32, InstanceID: "s1", InstanceAddr: "10.0.0.3", InstancePort: 3456}, cfg.StoreGateway.Ring.Config)
	require.Equal(t, 2, cfg.StoreGateway.Ring.ReplicationFactor)

	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	require.Contains(t, string(out), "    wait_active_timeout: 5s\n", "/config shows the ring settings at their old places")
	require.NotRegexp(t, `(?m)^\s+config:$`, string(out), "the shared ring settings are inline")
}

// ingesterRingWant is what the ingester ring settings of the tests below
// resolve to.
func ingesterRingWant(t *testing.T, cfg *Config, interfaces []string) {
	t.Helper()
	lc := cfg.Ingester.Lifecycler
	require.Equal(t, ringutil.Config{HeartbeatPeriod: 2 * time.Second, HeartbeatTimeout: 30 * time.Second, NumTokens: 64, InstanceID: "ing-7", InstanceAddr: "10.0.0.7", InstancePort: 7777}, lc.Config)
	require.Equal(t, ringutil.LifecycleConfig{
		Zone: "zone-b", TokensFilePath: "/data/tokens", JoinAfter: 3 * time.Second, ObservePeriod: 4 * time.Second,
		MinReadyDuration: 5 * time.Second, FinalSleep: 6 * time.Second, UnregisterOnShutdown: false,
		InterfaceNames: interfaces, EnableInet6: true,
	}, lc.LifecycleConfig)
	require.Equal(t, 3, lc.RingConfig.ReplicationFactor)
	require.True(t, lc.RingConfig.ZoneAwarenessEnabled)
	require.Equal(t, 40*time.Second, lc.RingConfig.HeartbeatTimeout)
	require.Equal(t, []string{"zone-c"}, []string(lc.RingConfig.ExcludedZones))
	require.NoError(t, cfg.Validate())
}

// TestIngesterRingFlagsUnchanged: every flag of the ingester's classic
// lifecycler still sets the ingester's ring membership, without warnings.
func TestIngesterRingFlagsUnchanged(t *testing.T) {
	var cfg Config
	var logs bytes.Buffer
	fs := flag.NewFlagSet("meridian", flag.ContinueOnError)
	cfg.RegisterFlags(fs, log.NewLogfmtLogger(&logs))
	require.NoError(t, ParseArgs(fs, []string{
		"-target=ingester", "-memberlist.join=peer:7946",
		"-ingester.num-tokens=64", "-ingester.heartbeat-period=2s", "-ingester.heartbeat-timeout=30s",
		"-ingester.join-after=3s", "-ingester.observe-period=4s", "-ingester.min-ready-duration=5s", "-ingester.final-sleep=6s",
		"-ingester.tokens-file-path=/data/tokens", "-ingester.availability-zone=zone-b", "-ingester.unregister-on-shutdown=false",
		"-ingester.lifecycler.ID=ing-7", "-ingester.lifecycler.addr=10.0.0.7", "-ingester.lifecycler.port=7777",
		"-ingester.lifecycler.interface=eth9", "-ingester.enable-inet6=true", "-ingester.readiness-check-ring-health=false",
		"-ingester.ring.heartbeat-timeout=40s", "-ingester.distributor.replication-factor=3",
		"-ingester.distributor.zone-awareness-enabled=true", "-ingester.distributor.excluded-zones=zone-c",
	}, &cfg))
	// As with dskit's lifecycler, the flag adds to the default interfaces.
	var defaults Config
	newFlagSet(&defaults)
	ingesterRingWant(t, &cfg, append(defaults.Ingester.Lifecycler.InterfaceNames, "eth9"))
	require.Empty(t, logs.String())
}

// TestIngesterRingYAMLKeys: the YAML keys of ingester.lifecycler load as
// before; id, address and port are deprecated aliases of instance_id,
// instance_addr and instance_port that log a warning, and lose to them.
func TestIngesterRingYAMLKeys(t *testing.T) {
	const common = `
ingester:
  lifecycler:
    ring:
      heartbeat_timeout: 40s
      replication_factor: 3
      zone_awareness_enabled: true
      excluded_zones: zone-c
    num_tokens: 64
    heartbeat_period: 2s
    heartbeat_timeout: 30s
    observe_period: 4s
    join_after: 3s
    min_ready_duration: 5s
    interface_names: [eth9]
    enable_inet6: true
    final_sleep: 6s
    tokens_file_path: /data/tokens
    availability_zone: zone-b
    unregister_on_shutdown: false
    readiness_check_ring_health: false
`
	cluster := []string{"-target=ingester", "-memberlist.join=peer:7946"}
	for _, tc := range []struct {
		name, yaml string
		args       []string
		wantWarn   []string
	}{
		{name: "canonical keys", yaml: common + "    instance_id: ing-7\n    instance_addr: 10.0.0.7\n    instance_port: 7777\n"},
		{name: "deprecated keys", yaml: common + "    id: ing-7\n    address: 10.0.0.7\n    port: 7777\n",
			wantWarn: []string{"ingester.lifecycler.id is deprecated", "ingester.lifecycler.address is deprecated", "ingester.lifecycler.port is deprecated"}},
		{name: "flags win over deprecated keys", yaml: common + "    id: old\n    address: 10.9.9.9\n    port: 1\n",
			args:     []string{"-ingester.lifecycler.ID=ing-7", "-ingester.lifecycler.addr=10.0.0.7", "-ingester.lifecycler.port=7777"},
			wantWarn: []string{"id is ignored", "address is ignored", "port is ignored"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			var logs bytes.Buffer
			fs := flag.NewFlagSet("meridian", flag.ContinueOnError)
			cfg.RegisterFlags(fs, log.NewLogfmtLogger(&logs))
			args := append([]string{"-config.file=" + writeFile(t, tc.yaml)}, cluster...)
			require.NoError(t, ParseArgs(fs, append(args, tc.args...), &cfg))
			ingesterRingWant(t, &cfg, []string{"eth9"})
			if len(tc.wantWarn) == 0 {
				require.Empty(t, logs.String())
			}
			for _, w := range tc.wantWarn {
				require.Contains(t, logs.String(), w)
			}
			out, err := yaml.Marshal(cfg.Ingester.Lifecycler)
			require.NoError(t, err)
			require.Contains(t, string(out), "\ninstance_id: ing-7\n", "/config shows the canonical key")
			require.NotRegexp(t, `(?m)^(id|address|port):`, string(out), "and not the deprecated ones")
		})
	}
}
