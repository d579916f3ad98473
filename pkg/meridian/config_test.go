package meridian

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
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
	require.Equal(t, "127.0.0.1", cfg.Ingester.Lifecycler.Addr)
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
