// Rulers: a Deployment. Stateless: rule groups live in object storage
// (rules/<tenant>/...), alert `for` state is restored from ALERTS_FOR_STATE.
// Groups are sharded across the pods by the ruler ring, gossiped like the
// other rings; a ruler that dies hands its groups to the others once its
// heartbeat is older than the ring's heartbeat timeout. Each ruler queries
// the ingesters and store-gateways itself and writes recorded series
// through the distributors' write path in process (docs/ruler.md).
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  _config+:: {
    ruler_replicas: 2,
    ruler_evaluation_interval: '1m',
    // Groups of a dead ruler are evaluated again after at most this much
    // (plus one interval).
    ruler_heartbeat_timeout: '1m',
  },

  ruler_container:: $.meridian_container('ruler', [
    '-ruler.ring.instance-addr=$(POD_IP)',
    '-ruler.ring.heartbeat-period=5s',
    '-ruler.ring.heartbeat-timeout=' + cfg.ruler_heartbeat_timeout,
    '-ruler.evaluation-interval=' + cfg.ruler_evaluation_interval,
    // The Alertmanager (alertmanager.libsonnet) under its /alertmanager prefix.
    '-ruler.alertmanager-url=http://alertmanager.%s.svc.cluster.local:%d/alertmanager' % [cfg.namespace, cfg.http_port],
    // Rules read blocks from their owners in the store-gateway ring, like
    // the queriers.
    '-store-gateway.ring.replication-factor=%d' % cfg.store_gateway_replication_factor,
    // The in-process write path joins the distributor ring, as a
    // distributor does.
    '-distributor.ring.instance-addr=$(POD_IP)',
    '-distributor.ring.instance-id=$(POD_NAME)',
  ], cpu='500m', memory='1Gi', memoryLimit='2Gi'),

  ruler_deployment: k.deployment('ruler',
                                 cfg.namespace,
                                 $.labels('ruler', 'ruler'),
                                 cfg.ruler_replicas,
                                 $.meridian_pod($.ruler_container)),

  ruler_service: k.service('ruler', cfg.namespace, { name: 'ruler' }, [
    { name: 'http', port: cfg.http_port },
  ]),
}
