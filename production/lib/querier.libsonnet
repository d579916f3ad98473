// Queriers: a Deployment. Each querier pod also runs a store-gateway that
// keeps the index headers of its share of the blocks in an emptyDir.
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  // Each querier pod also runs a store-gateway: blocks are sharded across
  // the pods by the store-gateway ring, two owners per block, so a pod can
  // restart without failing long-term queries.
  querier_container:: $.meridian_container('querier,store-gateway', ['-store-gateway.ring.replication-factor=2'], cpu='1', memory='2Gi', memoryLimit='4Gi'),

  querier_deployment: k.deployment('querier',
                                   cfg.namespace,
                                   $.labels('querier', 'querier'),
                                   cfg.querier_replicas,
                                   $.meridian_pod($.querier_container)),

  querier_service: k.service('querier', cfg.namespace, { name: 'querier' }, [
    { name: 'http', port: cfg.http_port },
    { name: 'grpc', port: cfg.grpc_port },
  ]),
}
