// Distributors: stateless, a Deployment behind a Service that receives
// remote write on /api/v1/push.
local k = import 'k.libsonnet';

{
  local cfg = self._config,
  local cap = cfg.capacity,

  // Samples per second the region receives, and the CPU the distributors
  // need for them (docs/benchmarks.md, cluster mode).
  samples_per_second:: cfg.active_series / cfg.scrape_interval_seconds,
  local distributorCores = $.samples_per_second / 1e6 * cap.distributor_cpu_per_million * cap.cpu_headroom / cfg.distributor_replicas,

  distributor_container:: $.meridian_container('distributor', [
    '-distributor.ring.instance-addr=$(POD_IP)',
    '-distributor.ring.instance-id=$(POD_NAME)',
  ], cpu=k.cpu(distributorCores), memory='1Gi', memoryLimit='2Gi'),

  distributor_deployment: k.deployment('distributor',
                                       cfg.namespace,
                                       $.labels('distributor', 'distributor'),
                                       cfg.distributor_replicas,
                                       $.meridian_pod($.distributor_container)),

  distributor_service: k.service('distributor', cfg.namespace, { name: 'distributor' }, [
    { name: 'http', port: cfg.http_port },
    { name: 'grpc', port: cfg.grpc_port },
  ]),
}
