// Recording rules for the heavy dashboard queries: the request histogram
// aggregated per route (one series per bucket instead of one per pod), and
// per-tenant and per-cluster ingestion.
{
  prometheusRules+:: {
    groups+: [
      {
        name: 'meridian_requests',
        rules: [
          {
            record: 'cluster_namespace_job_route:meridian_request_duration_seconds_bucket:sum_rate',
            expr: 'sum by (cluster, namespace, job, route, le) (rate(meridian_request_duration_seconds_bucket[1m]))',
          },
          {
            record: 'cluster_namespace_job_route:meridian_request_duration_seconds_sum:sum_rate',
            expr: 'sum by (cluster, namespace, job, route) (rate(meridian_request_duration_seconds_sum[1m]))',
          },
          {
            record: 'cluster_namespace_job_route:meridian_request_duration_seconds_count:sum_rate',
            expr: 'sum by (cluster, namespace, job, route) (rate(meridian_request_duration_seconds_count[1m]))',
          },
        ],
      },
      {
        name: 'meridian_ingestion',
        rules: [
          {
            record: 'cluster_namespace:meridian_distributor_received_samples:rate5m',
            expr: 'sum by (cluster, namespace) (rate(meridian_distributor_received_samples_total[5m]))',
          },
          {
            record: 'cluster_namespace_tenant:meridian_distributor_received_samples:rate5m',
            expr: 'sum by (cluster, namespace, tenant) (rate(meridian_distributor_received_samples_total[5m]))',
          },
          {
            record: 'cluster_namespace_pod:meridian_ingester_rss_bytes_per_series:ratio',
            expr: |||
              max by (cluster, namespace, pod) (process_resident_memory_bytes and on (cluster, namespace, pod) meridian_ingester_memory_series)
              /
              max by (cluster, namespace, pod) (meridian_ingester_memory_series > 0)
            |||,
          },
        ],
      },
    ],
  },
}
