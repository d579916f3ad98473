// The compactor: one replica (it processes every tenant in turn), a
// StatefulSet so its working directory survives restarts. It merges the
// replicas' blocks, compacts 2h -> 12h -> 24h, applies retention and keeps
// the bucket index.
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  _config+:: {
    compactor_disk: '100Gi',
    // 0 keeps blocks forever.
    compactor_retention: '0s',
  },

  compactor_container:: $.meridian_container('compactor', [
    '-compactor.data-dir=/data/compactor',
    '-compactor.blocks-retention-period=' + cfg.compactor_retention,
  ], cpu='1', memory='4Gi', memoryLimit='8Gi'),

  compactor_statefulset: k.statefulSet('compactor',
                                       cfg.namespace,
                                       $.labels('compactor', 'compactor', gossip=false),
                                       1,
                                       'compactor',
                                       $.meridian_pod($.compactor_container, emptyData=false, grace=300),
                                       [k.pvc('data', cfg.compactor_disk, cfg.storage_class)]),

  compactor_service: k.service('compactor', cfg.namespace, { name: 'compactor' }, [
    { name: 'http', port: cfg.http_port },
  ], headless=true),
}
