// The multi-tenant Alertmanager: a StatefulSet of exactly one replica.
// Tenants are not replicated across Alertmanagers yet (no ring; see
// docs/alertmanager.md, "Not built yet"): two replicas would each notify
// for every alert and overwrite each other's silences in object storage.
// So it is one pod, not a gossip member; a restart keeps configurations,
// silences and the notification log, which live in object storage
// (alerts/<tenant>/...) and are written when the pod stops; alerts are
// re-sent by the rulers. Its data volume is therefore an emptyDir.
local k = import 'k.libsonnet';

{
  local cfg = self._config,

  alertmanager_container:: $.meridian_container('alertmanager', [
    '-alertmanager.web.external-url=http://alertmanager.%s.svc.cluster.local:%d/alertmanager' % [cfg.namespace, cfg.http_port],
  ], cpu='250m', memory='512Mi', memoryLimit='1Gi'),

  alertmanager_statefulset: k.statefulSet('alertmanager',
                                          cfg.namespace,
                                          $.labels('alertmanager', 'alertmanager', gossip=false),
                                          1,
                                          'alertmanager',
                                          // The grace period covers writing every tenant's state.
                                          $.meridian_pod($.alertmanager_container, grace=60)),

  alertmanager_service: k.service('alertmanager', cfg.namespace, { name: 'alertmanager' }, [
    { name: 'http', port: cfg.http_port },
  ]),
}
