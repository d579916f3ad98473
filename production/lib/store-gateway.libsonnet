// Store-gateways: a StatefulSet, so each pod keeps its index headers on a
// persistent volume across restarts (no re-download of index sections).
// Blocks are sharded across the pods by the store-gateway ring with two
// owners per block, so one pod can restart without failing long-term
// queries.
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  _config+:: {
    store_gateway_replicas: 2,
    store_gateway_replication_factor: 2,
    store_gateway_disk: '20Gi',
  },

  store_gateway_container:: $.meridian_container('store-gateway', [
    '-store-gateway.data-dir=/data/store-gateway',
    '-store-gateway.ring.replication-factor=%d' % cfg.store_gateway_replication_factor,
  ], cpu='1', memory='2Gi', memoryLimit='4Gi'),

  store_gateway_statefulset: k.statefulSet('store-gateway',
                                           cfg.namespace,
                                           $.labels('store-gateway', 'store-gateway'),
                                           cfg.store_gateway_replicas,
                                           'store-gateway',
                                           $.meridian_pod($.store_gateway_container, emptyData=false, grace=60),
                                           [k.pvc('data', cfg.store_gateway_disk, cfg.storage_class)]),

  store_gateway_service: k.service('store-gateway', cfg.namespace, { name: 'store-gateway' }, [
    { name: 'http', port: cfg.http_port },
    { name: 'grpc', port: cfg.grpc_port },
  ], headless=true),
}
