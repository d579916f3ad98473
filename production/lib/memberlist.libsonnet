// The memberlist gossip Service: headless, so `dns+<service>:7946` resolves
// to every member pod (ready or not) and -memberlist.join finds them all.
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  gossip_ring_service: k.service(cfg.gossip_service,
                                 cfg.namespace,
                                 { gossip_ring_member: 'true' },
                                 [{ name: 'gossip', port: cfg.gossip_port }],
                                 headless=true),
}
