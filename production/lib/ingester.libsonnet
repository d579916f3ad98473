// Ingesters: one StatefulSet per zone, each pod with its own volume for
// the WAL, the head and blocks waiting to ship. Zone-aware replication puts
// the replicas of a series in different zones, so a whole zone can be
// rolled out (or lost) at once; the PodDisruptionBudget of each zone lets
// one pod go at a time.
local k = import 'k.libsonnet';

{
  local cfg = self._config,
  local cap = cfg.capacity,

  ingester_count:: std.length(cfg.zones) * cfg.ingester_replicas_per_zone,
  // Each series is stored replication_factor times, spread evenly.
  ingester_series_per_pod:: cfg.active_series * cfg.replication_factor / $.ingester_count,
  local memoryBytes = $.ingester_series_per_pod * cap.ingester_bytes_per_series * cap.ingester_memory_headroom,
  local cores = $.ingester_series_per_pod / cfg.scrape_interval_seconds / 1e6 * cap.ingester_cpu_per_million_copies * cap.cpu_headroom,

  ingester_container(zone):: $.meridian_container('ingester', [
    '-ingester.availability-zone=' + zone.name,
    '-ingester.lifecycler.ID=$(POD_NAME)',
    '-ingester.lifecycler.addr=$(POD_IP)',
    '-ingester.tokens-file-path=/data/tokens',
  ], cpu=k.cpu(cores), memory=k.memory(memoryBytes), memoryLimit=k.memory(memoryBytes * 1.5)),

  ingester_pod(zone):: $.meridian_pod($.ingester_container(zone), emptyData=false, grace=cfg.ingester_termination_grace_seconds) + {
    // Spread a zone's ingesters over nodes; pin the zone to its node zone.
    affinity: {
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [{
          labelSelector: { matchLabels: { component: 'ingester', zone: zone.name } },
          topologyKey: 'kubernetes.io/hostname',
        }],
      },
    },
  } + (if zone.node_zone == '' then {} else { nodeSelector: { 'topology.kubernetes.io/zone': zone.node_zone } }),

  ingester_statefulsets: {
    [zone.name]: k.statefulSet('ingester-' + zone.name,
                               cfg.namespace,
                               $.labels('ingester-' + zone.name, 'ingester') + { zone: zone.name },
                               cfg.ingester_replicas_per_zone,
                               'ingester-' + zone.name,
                               $.ingester_pod(zone),
                               [k.pvc('data', cfg.ingester_disk, cfg.storage_class)])
    for zone in cfg.zones
  },

  // Governing headless Service of each zone's StatefulSet (stable pod DNS).
  ingester_services: {
    [zone.name]: k.service('ingester-' + zone.name, cfg.namespace, { name: 'ingester-' + zone.name }, [
      { name: 'http', port: cfg.http_port },
      { name: 'grpc', port: cfg.grpc_port },
    ], headless=true)
    for zone in cfg.zones
  },

  ingester_pdbs: {
    [zone.name]: k.pdb('ingester-' + zone.name, cfg.namespace, { name: 'ingester-' + zone.name }, 1)
    for zone in cfg.zones
  },
}
