// Query-frontends: a Deployment in front of the querier Service. It does
// not join the ring, so it is not a gossip member.
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  query_frontend_container:: $.meridian_container('query-frontend', [
    '-frontend.downstream-url=http://querier.%s.svc.cluster.local:%d' % [cfg.namespace, cfg.http_port],
  ], cpu='500m', memory='1Gi', memoryLimit='2Gi'),

  query_frontend_deployment: k.deployment('query-frontend',
                                          cfg.namespace,
                                          $.labels('query-frontend', 'query-frontend', gossip=false),
                                          cfg.query_frontend_replicas,
                                          $.meridian_pod($.query_frontend_container)),

  query_frontend_service: k.service('query-frontend', cfg.namespace, { name: 'query-frontend' }, [
    { name: 'http', port: cfg.http_port },
  ]),
}
