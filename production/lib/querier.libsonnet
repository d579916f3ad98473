// Queriers: a Deployment. Stateless: recent data comes from the ingesters,
// older data from the store-gateways that own each block (store-gateway.libsonnet).
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  // The querier routes each block to its owners in the store-gateway ring,
  // which it reads with the same replication factor the gateways use.
  querier_container:: $.meridian_container('querier', ['-store-gateway.ring.replication-factor=%d' % cfg.store_gateway_replication_factor], cpu='1', memory='2Gi', memoryLimit='4Gi'),

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
