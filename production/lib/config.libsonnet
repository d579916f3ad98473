// Settings of one Meridian cluster. An environment overrides what differs
// (bucket, replica counts, zones); everything else is the default here.
{
  _config+:: {
    namespace: 'meridian',
    // Name of this cluster in the `cluster` label of its metrics and in the
    // memberlist cluster label, so two regions' gossip never mixes.
    cluster: error 'set _config.cluster (e.g. the region name)',
    image: 'meridian:latest',

    http_port: 8080,
    grpc_port: 9095,
    gossip_port: 7946,
    gossip_service: 'gossip-ring',

    // Object storage: S3. Credentials come from the AWS environment or IAM
    // (optionally the Secret named below, keys AWS_ACCESS_KEY_ID and
    // AWS_SECRET_ACCESS_KEY).
    s3: {
      endpoint: 's3.amazonaws.com',
      bucket_name: error 'set _config.s3.bucket_name',
      region: '',
      force_path_style: false,
      insecure: false,
    },
    s3_secret: 'meridian-s3',

    replication_factor: 3,
    // One ingester StatefulSet per zone. node_zone is the value of the
    // topology.kubernetes.io/zone node label the zone's pods run on ('' =
    // no node selector).
    zones: [
      { name: 'zone-a', node_zone: '' },
      { name: 'zone-b', node_zone: '' },
      { name: 'zone-c', node_zone: '' },
    ],
    ingester_replicas_per_zone: 1,
    distributor_replicas: 2,
    querier_replicas: 2,
    query_frontend_replicas: 2,

    // Load the cluster is sized for (see production/README.md: Capacity).
    active_series: 1000000,  // before replication
    scrape_interval_seconds: 15,

    // Capacity figures from docs/benchmarks.md (2-core VM, GOGC 50).
    capacity: {
      // RSS per active series per stored copy (target <= 3 KiB; measured
      // 2 923 B monolith, 2 632 B per copy in the RF 3 cluster).
      ingester_bytes_per_series: 3072,
      // Headroom over the steady state: head cut and block shipping, query
      // buffers, GC.
      ingester_memory_headroom: 1.5,
      // CPU-seconds per million samples (cluster, RF 3): ingesters 10.01
      // for three copies, so ~3.34 per copy; distributor 4.64.
      ingester_cpu_per_million_copies: 3.34,
      distributor_cpu_per_million: 4.64,
      cpu_headroom: 1.5,
    },
    ingester_disk: '100Gi',
    storage_class: null,
    // 10 minutes: enough to cut the whole head into blocks and upload them
    // (flush on shutdown) before the kubelet kills the pod.
    ingester_termination_grace_seconds: 600,

    // Default limits of every tenant (YAML names of the `limits` section).
    limits: {
      max_global_series_per_tenant: 1500000,
      ingestion_rate: 1000000,
      ingestion_burst_size: 2000000,
      max_query_length: '32d',
      query_timeout: '2m',
    },
    // Per-tenant overrides, reloaded while running (runtime config file).
    overrides: {},
  },
}
