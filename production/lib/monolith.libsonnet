// Meridian as one process (-target=all) in a single-replica StatefulSet:
// for small installations and trying it out. Same configuration file and
// overrides as the cluster, with a replication factor of 1, no zones and
// nobody to gossip with (the in-memory ring).
local k = import 'k.libsonnet';

(import 'config.libsonnet') +
(import 'common.libsonnet') +
{
  local cfg = self._config,

  _config+:: {
    replication_factor: 1,
    zones: [],
    monolith_cpu: '2',
    monolith_memory: '8Gi',
    monolith_disk: '200Gi',
  },

  meridian_config+:: {
    memberlist: {},
    common+: { ring: { kvstore: { store: 'inmemory' } } },
    frontend: {},
  },

  monolith_statefulset: k.statefulSet('meridian',
                                      cfg.namespace,
                                      $.labels('meridian', 'monolith', gossip=false),
                                      1,
                                      'meridian',
                                      $.meridian_pod($.meridian_container('all', [
                                        '-ingester.lifecycler.addr=127.0.0.1',
                                        '-ingester.tokens-file-path=/data/tokens',
                                      ], cpu=cfg.monolith_cpu, memory=cfg.monolith_memory), emptyData=false, grace=cfg.ingester_termination_grace_seconds),
                                      [k.pvc('data', cfg.monolith_disk, cfg.storage_class)]),

  monolith_service: k.service('meridian', cfg.namespace, { name: 'meridian' }, [
    { name: 'http', port: cfg.http_port },
    { name: 'grpc', port: cfg.grpc_port },
  ]),

  local objectsOf(v) =
    if std.isObject(v) && std.objectHas(v, 'apiVersion') then [v]
    else if std.isObject(v) then std.flattenArrays([objectsOf(v[f]) for f in std.objectFields(v)])
    else [],
  list:: { apiVersion: 'v1', kind: 'List', items: objectsOf({ [f]: $[f] for f in std.objectFields($) }) },
}
