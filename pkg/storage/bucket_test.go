package storage

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestConfigFlagsDefaults(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{
		"-blocks-storage.backend=s3",
		"-blocks-storage.s3.endpoint=127.0.0.1:9000",
		"-blocks-storage.s3.bucket-name=blocks",
		"-blocks-storage.s3.access-key-id=k",
		"-blocks-storage.s3.secret-access-key=s",
		"-blocks-storage.s3.force-path-style",
	}))
	require.Equal(t, BackendS3, cfg.Backend)
	require.Equal(t, "127.0.0.1:9000", cfg.S3.Endpoint)
	require.Equal(t, "blocks", cfg.S3.BucketName)
	require.Equal(t, "s", cfg.S3.SecretAccessKey.String())
	require.True(t, cfg.S3.ForcePathStyle)
	require.Equal(t, "blob.core.windows.net", cfg.Azure.Endpoint)
	require.NoError(t, cfg.Validate())

	var def Config
	def.RegisterFlags(flag.NewFlagSet("default", flag.ContinueOnError))
	require.Equal(t, BackendFilesystem, def.Backend)
	require.NoError(t, def.Validate())
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		cfg     Config
		wantErr string
	}{
		"filesystem": {cfg: Config{Backend: BackendFilesystem}},
		"unknown backend": {
			cfg:     Config{Backend: "tape"},
			wantErr: `unsupported object storage backend "tape"`,
		},
		"s3 without endpoint": {
			cfg:     Config{Backend: BackendS3, S3: S3Config{BucketName: "b"}},
			wantErr: "s3.endpoint",
		},
		"s3 without bucket": {
			cfg:     Config{Backend: BackendS3, S3: S3Config{Endpoint: "e"}},
			wantErr: "s3.bucket-name",
		},
		"s3 key without secret": {
			cfg:     Config{Backend: BackendS3, S3: S3Config{Endpoint: "e", BucketName: "b", AccessKeyID: "k"}},
			wantErr: "set together",
		},
		"s3 from environment credentials": {
			cfg: Config{Backend: BackendS3, S3: S3Config{Endpoint: "e", BucketName: "b"}},
		},
		"gcs without bucket": {
			cfg:     Config{Backend: BackendGCS},
			wantErr: "gcs.bucket-name",
		},
		"azure without container": {
			cfg:     Config{Backend: BackendAzure, Azure: AzureConfig{StorageAccountName: "a"}},
			wantErr: "azure.container-name",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestNewBucketFilesystemRejectsEmptyDir(t *testing.T) {
	_, err := NewBucket(Config{Backend: BackendFilesystem}, "test", log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.ErrorContains(t, err, "directory is empty")
}

func TestNewBucketFilesystemInstrumented(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewPedanticRegistry()
	recorder := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)).Tracer("test")

	bkt, err := newBucket(Config{Backend: BackendFilesystem, Filesystem: FilesystemConfig{Dir: dir}}, "ingester", log.NewNopLogger(), reg, tracer)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, bkt.Close()) })

	ctx := context.Background()
	require.NoError(t, bkt.Upload(ctx, "a/b", strings.NewReader("hello")))
	ok, err := bkt.Exists(ctx, "a/b")
	require.NoError(t, err)
	require.True(t, ok)
	rc, err := bkt.Get(ctx, "a/b")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, "hello", string(got))

	// The object lands under the configured directory.
	onDisk, err := os.ReadFile(filepath.Join(dir, "a", "b"))
	require.NoError(t, err)
	require.Equal(t, "hello", string(onDisk))

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP objstore_bucket_operations_total Total number of all attempted operations against a bucket.
# TYPE objstore_bucket_operations_total counter
objstore_bucket_operations_total{bucket="ingester",operation="attributes"} 0
objstore_bucket_operations_total{bucket="ingester",operation="delete"} 0
objstore_bucket_operations_total{bucket="ingester",operation="exists"} 1
objstore_bucket_operations_total{bucket="ingester",operation="get"} 1
objstore_bucket_operations_total{bucket="ingester",operation="get_range"} 0
objstore_bucket_operations_total{bucket="ingester",operation="iter"} 0
objstore_bucket_operations_total{bucket="ingester",operation="upload"} 1
`), "objstore_bucket_operations_total"))

	var names []string
	for _, s := range recorder.Ended() {
		names = append(names, s.Name())
	}
	require.ElementsMatch(t, []string{"bucket_upload", "bucket_exists", "bucket_get"}, names)
}

func TestNewTenantBucket(t *testing.T) {
	dir := t.TempDir()
	bkt, err := NewBucket(Config{Backend: BackendFilesystem, Filesystem: FilesystemConfig{Dir: dir}}, "test", log.NewNopLogger(), prometheus.NewPedanticRegistry())
	require.NoError(t, err)
	ctx := context.Background()

	tests := []struct {
		tenant string
		object string
		body   string
	}{
		{tenant: "team-a", object: "01ABC/meta.json", body: "a"},
		{tenant: "team-b", object: "01ABC/meta.json", body: "b"},
	}
	for _, tc := range tests {
		require.NoError(t, NewTenantBucket(bkt, tc.tenant).Upload(ctx, tc.object, bytes.NewBufferString(tc.body)))
	}
	for _, tc := range tests {
		onDisk, err := os.ReadFile(filepath.Join(dir, tc.tenant, filepath.FromSlash(tc.object)))
		require.NoError(t, err)
		require.Equal(t, tc.body, string(onDisk))

		// Listing the tenant's bucket shows only its own objects.
		var listed []string
		require.NoError(t, NewTenantBucket(bkt, tc.tenant).Iter(ctx, "", func(name string) error {
			listed = append(listed, name)
			return nil
		}))
		require.Equal(t, []string{"01ABC/"}, listed)
	}

	var tenants []string
	require.NoError(t, bkt.Iter(ctx, "", func(name string) error {
		tenants = append(tenants, name)
		return nil
	}))
	require.Equal(t, []string{"team-a/", "team-b/"}, tenants)
}
