// Small constructors for the Kubernetes objects Meridian needs. Plain
// jsonnet, no external library.
{
  configMap(name, namespace, data):: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: name, namespace: namespace },
    data: data,
  },

  service(name, namespace, selector, ports, headless=false):: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: name, namespace: namespace, labels: { name: name } },
    spec: {
      selector: selector,
      ports: [{ name: p.name, port: p.port, targetPort: p.port, protocol: 'TCP' } for p in ports],
    } + (if headless then { clusterIP: 'None', publishNotReadyAddresses: true } else {}),
  },

  deployment(name, namespace, labels, replicas, podSpec, maxUnavailable=1):: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: name, namespace: namespace, labels: labels },
    spec: {
      replicas: replicas,
      selector: { matchLabels: { name: name } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: maxUnavailable } },
      template: { metadata: { labels: labels }, spec: podSpec },
    },
  },

  statefulSet(name, namespace, labels, replicas, serviceName, podSpec, claims=[]):: {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: name, namespace: namespace, labels: labels },
    spec: {
      replicas: replicas,
      serviceName: serviceName,
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate' },
      selector: { matchLabels: { name: name } },
      template: { metadata: { labels: labels }, spec: podSpec },
      volumeClaimTemplates: claims,
    },
  },

  pvc(name, size, storageClass):: {
    metadata: { name: name },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: size } },
    } + (if storageClass == null then {} else { storageClassName: storageClass }),
  },

  pdb(name, namespace, selector, maxUnavailable):: {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: name, namespace: namespace },
    spec: { maxUnavailable: maxUnavailable, selector: { matchLabels: selector } },
  },

  // Kubernetes quantities from numbers: millicores and mebibytes, rounded up.
  cpu(cores):: '%dm' % std.max(100, std.ceil(cores * 1000)),
  memory(bytes):: '%dMi' % std.max(128, std.ceil(bytes / 1048576)),
}
