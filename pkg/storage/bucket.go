// Package storage configures Meridian's object storage and hands out
// tenant-prefixed buckets on top of thanos-io/objstore.
package storage

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/azure"
	"github.com/thanos-io/objstore/providers/filesystem"
	"github.com/thanos-io/objstore/providers/gcs"
	"github.com/thanos-io/objstore/providers/s3"
	objstoreotel "github.com/thanos-io/objstore/tracing/opentelemetry"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// Supported backends.
const (
	BackendFilesystem = "filesystem"
	BackendS3         = "s3"
	BackendGCS        = "gcs"
	BackendAzure      = "azure"
)

// Backends lists the accepted values of -blocks-storage.backend.
var Backends = []string{BackendFilesystem, BackendS3, BackendGCS, BackendAzure}

// tracerName names the OpenTelemetry tracer of bucket operations.
const tracerName = "github.com/meridianhq/meridian/pkg/storage"

// Config selects and configures the object storage backend.
type Config struct {
	Backend    string           `yaml:"backend"`
	Filesystem FilesystemConfig `yaml:"filesystem"`
	S3         S3Config         `yaml:"s3"`
	GCS        GCSConfig        `yaml:"gcs"`
	Azure      AzureConfig      `yaml:"azure"`
}

// FilesystemConfig configures the filesystem backend.
type FilesystemConfig struct {
	// Dir is the bucket's root directory. Empty means <data-dir>/bucket;
	// the caller fills it in before NewBucket.
	Dir string `yaml:"dir"`
}

// S3Config configures the S3 backend.
type S3Config struct {
	Endpoint        string         `yaml:"endpoint"`
	BucketName      string         `yaml:"bucket_name"`
	AccessKeyID     string         `yaml:"access_key_id"`
	SecretAccessKey flagext.Secret `yaml:"secret_access_key"`
	Region          string         `yaml:"region"`
	Insecure        bool           `yaml:"insecure"`
	ForcePathStyle  bool           `yaml:"force_path_style"`
}

// GCSConfig configures the Google Cloud Storage backend.
type GCSConfig struct {
	BucketName     string         `yaml:"bucket_name"`
	ServiceAccount flagext.Secret `yaml:"service_account"`
}

// AzureConfig configures the Azure Blob Storage backend.
type AzureConfig struct {
	StorageAccountName string         `yaml:"account_name"`
	StorageAccountKey  flagext.Secret `yaml:"account_key"`
	ContainerName      string         `yaml:"container_name"`
	Endpoint           string         `yaml:"endpoint_suffix"`
}

// RegisterFlags registers the object storage flags under -blocks-storage.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	const p = "blocks-storage."
	f.StringVar(&c.Backend, p+"backend", BackendFilesystem, fmt.Sprintf("Object storage backend: %s.", strings.Join(Backends, ", ")))

	f.StringVar(&c.Filesystem.Dir, p+"filesystem.dir", "", "Directory of the filesystem bucket. Empty means <data-dir>/bucket.")

	f.StringVar(&c.S3.Endpoint, p+"s3.endpoint", "", "S3 endpoint, host[:port] without scheme.")
	f.StringVar(&c.S3.BucketName, p+"s3.bucket-name", "", "S3 bucket name.")
	f.StringVar(&c.S3.AccessKeyID, p+"s3.access-key-id", "", "S3 access key ID. Empty uses the AWS environment and IAM credentials.")
	f.Var(&c.S3.SecretAccessKey, p+"s3.secret-access-key", "S3 secret access key.")
	f.StringVar(&c.S3.Region, p+"s3.region", "", "S3 region.")
	f.BoolVar(&c.S3.Insecure, p+"s3.insecure", false, "Talk plain HTTP to the S3 endpoint.")
	f.BoolVar(&c.S3.ForcePathStyle, p+"s3.force-path-style", false, "Address buckets by path (endpoint/bucket) instead of virtual host (bucket.endpoint).")

	f.StringVar(&c.GCS.BucketName, p+"gcs.bucket-name", "", "GCS bucket name.")
	f.Var(&c.GCS.ServiceAccount, p+"gcs.service-account", "GCS service account JSON. Empty uses the Google default credentials.")

	f.StringVar(&c.Azure.StorageAccountName, p+"azure.account-name", "", "Azure storage account name.")
	f.Var(&c.Azure.StorageAccountKey, p+"azure.account-key", "Azure storage account key.")
	f.StringVar(&c.Azure.ContainerName, p+"azure.container-name", "", "Azure blob container name.")
	f.StringVar(&c.Azure.Endpoint, p+"azure.endpoint-suffix", "blob.core.windows.net", "Azure blob endpoint suffix.")
}

// Validate checks that the selected backend has what it needs.
func (c *Config) Validate() error {
	switch c.Backend {
	case BackendFilesystem:
		// An empty dir is filled in by the caller from the data directory.
	case BackendS3:
		if c.S3.Endpoint == "" {
			return errors.New("s3 backend needs -blocks-storage.s3.endpoint")
		}
		if c.S3.BucketName == "" {
			return errors.New("s3 backend needs -blocks-storage.s3.bucket-name")
		}
		if (c.S3.AccessKeyID == "") != (c.S3.SecretAccessKey.String() == "") {
			return errors.New("s3 access key ID and secret access key must be set together")
		}
	case BackendGCS:
		if c.GCS.BucketName == "" {
			return errors.New("gcs backend needs -blocks-storage.gcs.bucket-name")
		}
	case BackendAzure:
		if c.Azure.StorageAccountName == "" {
			return errors.New("azure backend needs -blocks-storage.azure.account-name")
		}
		if c.Azure.ContainerName == "" {
			return errors.New("azure backend needs -blocks-storage.azure.container-name")
		}
	default:
		return fmt.Errorf("unsupported object storage backend %q, want one of %s", c.Backend, strings.Join(Backends, ", "))
	}
	return nil
}

// NewBucket creates the configured bucket, instrumented with objstore
// metrics (labelled bucket=<name>) and an OpenTelemetry span per operation.
// name is the component using the bucket, e.g. "ingester" or "querier".
func NewBucket(cfg Config, name string, logger log.Logger, reg prometheus.Registerer) (objstore.InstrumentedBucket, error) {
	return newBucket(cfg, name, logger, reg, otel.Tracer(tracerName))
}

func newBucket(cfg Config, name string, logger log.Logger, reg prometheus.Registerer, tracer trace.Tracer) (objstore.InstrumentedBucket, error) {
	if !slices.Contains(Backends, cfg.Backend) {
		return nil, fmt.Errorf("unsupported object storage backend %q, want one of %s", cfg.Backend, strings.Join(Backends, ", "))
	}
	bkt, err := newBackend(cfg, name, logger)
	if err != nil {
		return nil, fmt.Errorf("create %s bucket for %s: %w", cfg.Backend, name, err)
	}
	instrumented := objstore.WrapWithMetrics(bkt, reg, name)
	return objstoreotel.WrapWithTraces(instrumented, tracer), nil
}

func newBackend(cfg Config, name string, logger log.Logger) (objstore.Bucket, error) {
	switch cfg.Backend {
	case BackendS3:
		c := s3.DefaultConfig
		c.PutUserMetadata = map[string]string{}
		c.Endpoint = cfg.S3.Endpoint
		c.Bucket = cfg.S3.BucketName
		c.AccessKey = cfg.S3.AccessKeyID
		c.SecretKey = cfg.S3.SecretAccessKey.String()
		c.Region = cfg.S3.Region
		c.Insecure = cfg.S3.Insecure
		if cfg.S3.ForcePathStyle {
			c.BucketLookupType = s3.PathLookup
		}
		return s3.NewBucketWithConfig(logger, c, name, nil)
	case BackendGCS:
		c := gcs.DefaultConfig
		c.Bucket = cfg.GCS.BucketName
		c.ServiceAccount = cfg.GCS.ServiceAccount.String()
		return gcs.NewBucketWithConfig(context.Background(), logger, c, name, nil)
	case BackendAzure:
		c := azure.DefaultConfig
		c.StorageAccountName = cfg.Azure.StorageAccountName
		c.StorageAccountKey = cfg.Azure.StorageAccountKey.String()
		c.ContainerName = cfg.Azure.ContainerName
		if cfg.Azure.Endpoint != "" {
			c.Endpoint = cfg.Azure.Endpoint
		}
		return azure.NewBucketWithConfig(logger, c, name, nil)
	default:
		if cfg.Filesystem.Dir == "" {
			return nil, errors.New("filesystem bucket directory is empty")
		}
		return filesystem.NewBucket(cfg.Filesystem.Dir)
	}
}

// NewTenantBucket returns a view of bkt in which every object lives under
// "<tenant>/".
func NewTenantBucket(bkt objstore.Bucket, tenant string) objstore.Bucket {
	return objstore.NewPrefixedBucket(bkt, tenant)
}
