// What every Meridian workload shares: the configuration file, the runtime
// overrides, the container and its probes.
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  // The Meridian YAML configuration (the -config.file), shared by every
  // component; per-component settings are flags in each container's args.
  meridian_config:: {
    common: { data_dir: '/data', ring: { kvstore: { store: 'memberlist' } } },
    server: {
      http_listen_port: cfg.http_port,
      grpc_listen_port: cfg.grpc_port,
      // Distributors send up to 100 MiB per push to an ingester; the
      // server's 4 MiB default would refuse large requests.
      grpc_server_max_recv_msg_size: 104857600,
      grpc_server_max_send_msg_size: 104857600,
      log_level: 'info',
      log_format: 'logfmt',
    },
    memberlist: {
      join_members: ['dns+%s.%s.svc.cluster.local.:%d' % [cfg.gossip_service, cfg.namespace, cfg.gossip_port]],
      bind_port: cfg.gossip_port,
      cluster_label: 'meridian-' + cfg.cluster,
    },
    limits: cfg.limits,
    runtime_config: { file: '/etc/meridian/overrides/overrides.yaml', period: '10s' },
    blocks_storage: {
      backend: 's3',
      s3: {
        endpoint: cfg.s3.endpoint,
        bucket_name: cfg.s3.bucket_name,
        region: cfg.s3.region,
        force_path_style: cfg.s3.force_path_style,
        insecure: cfg.s3.insecure,
      },
    },
    ingester: {
      lifecycler: {
        ring: {
          replication_factor: cfg.replication_factor,
          zone_awareness_enabled: std.length(cfg.zones) > 1,
          heartbeat_timeout: '1m',
        },
        heartbeat_period: '5s',
        heartbeat_timeout: '1m',
        num_tokens: 128,
      },
      ship_interval: '1m',
      retention_period: '6h',
      flush_on_shutdown: true,
      // A crashed ingester that never comes back stops costing the reads
      // their tolerated failure after this long.
      auto_forget_unhealthy_period: '10m',
    },
    querier: { bucket_blocks: { sync_interval: '1m' } },
    frontend: {
      downstream_url: 'http://querier.%s.svc.cluster.local:%d' % [cfg.namespace, cfg.http_port],
    },
  },

  config_map: k.configMap('meridian-config', cfg.namespace, {
    'meridian.yaml': std.manifestYamlDoc($.meridian_config, indent_array_in_object=true, quote_keys=false),
  }),
  overrides_map: k.configMap('meridian-overrides', cfg.namespace, {
    'overrides.yaml': std.manifestYamlDoc({ overrides: cfg.overrides }, indent_array_in_object=true, quote_keys=false),
  }),

  // A Meridian container running target with extra flags.
  meridian_container(target, args=[], cpu='500m', memory='1Gi', memoryLimit=null):: {
    name: 'meridian',
    image: cfg.image,
    imagePullPolicy: 'IfNotPresent',
    args: [
      '-target=' + target,
      '-config.file=/etc/meridian/config/meridian.yaml',
    ] + args,
    env: [
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'AWS_ACCESS_KEY_ID', valueFrom: { secretKeyRef: { name: cfg.s3_secret, key: 'AWS_ACCESS_KEY_ID', optional: true } } },
      { name: 'AWS_SECRET_ACCESS_KEY', valueFrom: { secretKeyRef: { name: cfg.s3_secret, key: 'AWS_SECRET_ACCESS_KEY', optional: true } } },
    ],
    ports: [
      { name: 'http', containerPort: cfg.http_port, protocol: 'TCP' },
      { name: 'grpc', containerPort: cfg.grpc_port, protocol: 'TCP' },
      { name: 'gossip', containerPort: cfg.gossip_port, protocol: 'TCP' },
    ],
    readinessProbe: {
      httpGet: { path: '/ready', port: cfg.http_port },
      initialDelaySeconds: 5,
      periodSeconds: 5,
      timeoutSeconds: 1,
      failureThreshold: 3,
    },
    resources: {
      requests: { cpu: cpu, memory: memory },
      limits: { memory: if memoryLimit == null then memory else memoryLimit },
    },
    volumeMounts: [
      { name: 'config', mountPath: '/etc/meridian/config', readOnly: true },
      { name: 'overrides', mountPath: '/etc/meridian/overrides', readOnly: true },
      { name: 'data', mountPath: '/data' },
    ],
    securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
  },

  // Pod spec around one Meridian container; data is a volume named "data"
  // (emptyDir unless the StatefulSet claims one).
  meridian_pod(container, emptyData=true, grace=30):: {
    containers: [container],
    terminationGracePeriodSeconds: grace,
    securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532 },
    volumes: [
      { name: 'config', configMap: { name: 'meridian-config', items: [{ key: 'meridian.yaml', path: 'meridian.yaml' }] } },
      { name: 'overrides', configMap: { name: 'meridian-overrides' } },
    ] + (if emptyData then [{ name: 'data', emptyDir: {} }] else []),
  },

  // Labels: name selects one workload; component groups zones; the gossip
  // label puts the pod behind the memberlist Service.
  labels(name, component, gossip=true):: {
    name: name,
    component: component,
    'app.kubernetes.io/name': 'meridian',
  } + (if gossip then { gossip_ring_member: 'true' } else {}),
}
