// Compactors: a StatefulSet so each pod's working directory survives
// restarts. They merge the replicas' blocks, compact 2h -> 12h -> 24h,
// apply retention and keep the bucket index. Tenants are sharded across
// the pods by the compactor ring (gossiped like the other rings): each
// tenant belongs to one compactor at a time.
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  _config+:: {
    // One compactor handles every tenant in turn; add replicas when a
    // compaction interval is no longer enough for all of them.
    compactor_replicas: 1,
    compactor_disk: '100Gi',
    // 0 keeps blocks forever.
    compactor_retention: '0s',
  },

  compactor_container:: $.meridian_container('compactor', [
    '-compactor.data-dir=/data/compactor',
    '-compactor.ring.instance-addr=$(POD_IP)',
    '-compactor.blocks-retention-period=' + cfg.compactor_retention,
  ], cpu='1', memory='4Gi', memoryLimit='8Gi'),

  compactor_statefulset: k.statefulSet('compactor',
                                       cfg.namespace,
                                       $.labels('compactor', 'compactor'),
                                       cfg.compactor_replicas,
                                       'compactor',
                                       $.meridian_pod($.compactor_container, emptyData=false, grace=300),
                                       [k.pvc('data', cfg.compactor_disk, cfg.storage_class)]),

  compactor_service: k.service('compactor', cfg.namespace, { name: 'compactor' }, [
    { name: 'http', port: cfg.http_port },
  ], headless=true),
}
