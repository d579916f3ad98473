// A Meridian cluster in microservices mode. Import it, override _config,
// and evaluate `.list` (a v1 List of every object) or use the fields.
(import 'config.libsonnet') +
(import 'common.libsonnet') +
(import 'memberlist.libsonnet') +
(import 'distributor.libsonnet') +
(import 'ingester.libsonnet') +
(import 'querier.libsonnet') +
(import 'query-frontend.libsonnet') +
(import 'store-gateway.libsonnet') +
(import 'compactor.libsonnet') +
(import 'ruler.libsonnet') +
(import 'alertmanager.libsonnet') +
{
  local objectsOf(v) =
    if std.isObject(v) && std.objectHas(v, 'apiVersion') then [v]
    else if std.isObject(v) then std.flattenArrays([objectsOf(v[f]) for f in std.objectFields(v)])
    else [],

  // Every visible field holding a Kubernetes object (or a map of them).
  list:: {
    apiVersion: 'v1',
    kind: 'List',
    items: objectsOf({ [f]: $[f] for f in std.objectFields($) }),
  },
}
