// Queriers: a Deployment. Each querier keeps a local copy of every block in
// the bucket (there is no store-gateway yet), in an emptyDir.
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  querier_container:: $.meridian_container('querier', [], cpu='1', memory='2Gi', memoryLimit='4Gi'),

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
