// The Meridian dashboards. Every panel reads the `datasource` variable and
// filters on the `cluster` and `namespace` variables.
local d = import 'lib/dashboard.libsonnet';

{
  local cfg = self._config,
  local sel(job, extra='') = d.selector(cfg, job, extra),
  local rate(m, job, by, extra='') = 'sum by (%s) (rate(%s{%s}[$__rate_interval]))' % [by, m, sel(job, extra)],

  grafanaDashboards+:: {
    'meridian-writes.json': d.dashboard('Meridian / Writes', 'meridian-writes', [
      d.row('Distributor: remote write', d.redPanels(cfg, 'distributor', 'api_v1_push', 'Push')),
      d.row('Ingester: Push (gRPC)', d.redPanels(cfg, 'ingester', '/meridian.Ingester/Push', 'Push')),
      d.row('Distributor to ingesters', [
        d.panel('Appends / s by outcome', 'ops', [[rate('meridian_distributor_ingester_appends_total', 'distributor', 'status'), '{{status}}']], stack=true),
        d.panel('Append errors', 'percentunit', [[
          'sum(rate(meridian_distributor_ingester_appends_total{%s}[$__rate_interval])) / sum(rate(meridian_distributor_ingester_appends_total{%s}[$__rate_interval]))' % [sel('distributor', ', status!="success"'), sel('distributor')],
          'failed share',
        ]]),
        d.panel('Ingester client latency (p99)', 's', [[
          'histogram_quantile(0.99, sum by (le, method) (rate(meridian_ingester_client_request_duration_seconds_bucket{%s}[$__rate_interval])))' % sel('distributor'),
          '{{method}}',
        ]]),
      ]),
      d.row('Samples', [
        d.panel('Samples received / s', 'short', [
          ['sum(cluster_namespace:meridian_distributor_received_samples:rate5m{cluster=~"$cluster", namespace=~"$namespace"})', 'received'],
          [rate('meridian_ingester_appended_samples_total', 'ingester', 'job'), 'appended by {{job}} (all replicas)'],
        ]),
        d.panel('Samples discarded by the distributor / s', 'short', [[rate('meridian_discarded_samples_total', 'distributor', 'reason'), '{{reason}}']], stack=true),
        d.panel('Samples rejected by ingesters / s', 'short', [[rate('meridian_ingester_rejected_samples_total', 'ingester', 'reason'), '{{reason}}']], stack=true),
      ]),
    ]),

    'meridian-reads.json': d.dashboard('Meridian / Reads', 'meridian-reads', [
      d.row('Query-frontend', d.redPanels(cfg, 'query_frontend', 'prometheus_api_v1.*', 'Queries')),
      d.row('Query-frontend: queue and cache', [
        d.panel('Downstream latency (p99)', 's', [[
          'histogram_quantile(0.99, sum by (le) (rate(meridian_frontend_downstream_request_duration_seconds_bucket{%s}[$__rate_interval])))' % sel('query_frontend'),
          'p99',
        ]], description='One split part sent to a querier, retries included.'),
        d.panel('Cache hit ratio', 'percentunit', [[
          'sum(rate(meridian_frontend_cache_hits_total{%s}[$__rate_interval])) / (sum(rate(meridian_frontend_cache_hits_total{%s}[$__rate_interval])) + sum(rate(meridian_frontend_cache_misses_total{%s}[$__rate_interval])))' % [sel('query_frontend'), sel('query_frontend'), sel('query_frontend')],
          'hits',
        ]], min=null),
        d.panel('Retries, splits and 429s / s', 'ops', [
          [rate('meridian_frontend_retries_total', 'query_frontend', 'job'), 'retries'],
          [rate('meridian_frontend_split_queries_total', 'query_frontend', 'job'), 'split parts'],
          [rate('meridian_frontend_rejected_requests_total', 'query_frontend', 'reason'), 'rejected: {{reason}}'],
        ]),
      ]),
      d.row('Querier', d.redPanels(cfg, 'querier', 'prometheus_api_v1_.*', 'Queries')),
      d.row('Querier: concurrency', [
        d.panel('Queries / s by endpoint and status', 'reqps', [[rate('meridian_querier_queries_total', 'querier', 'endpoint, status'), '{{endpoint}} {{status}}']], stack=true),
        d.panel('Queries in flight', 'short', [['sum by (pod) (meridian_querier_queries_inflight{%s})' % sel('querier'), '{{pod}}']]),
        d.panel('Wait for a query slot (p99)', 's', [[
          'histogram_quantile(0.99, sum by (le) (rate(meridian_querier_query_slot_wait_seconds_bucket{%s}[$__rate_interval])))' % sel('querier'),
          'p99',
        ]]),
      ]),
      d.row('Ingester: QueryStream (gRPC)', d.redPanels(cfg, 'ingester', '/meridian.Ingester/QueryStream', 'QueryStream')),
    ]),

    'meridian-object-storage.json': d.dashboard('Meridian / Object storage', 'meridian-object-storage', [
      d.row('Bucket operations', [
        d.panel('Operations / s', 'ops', [['sum by (operation) (rate(objstore_bucket_operations_total{cluster=~"$cluster", namespace=~"$namespace"}[$__rate_interval]))', '{{operation}}']], stack=true),
        d.panel('Failed operations', 'percentunit', [[
          'sum by (operation) (rate(objstore_bucket_operation_failures_total{cluster=~"$cluster", namespace=~"$namespace"}[$__rate_interval])) / sum by (operation) (rate(objstore_bucket_operations_total{cluster=~"$cluster", namespace=~"$namespace"}[$__rate_interval]))',
          '{{operation}}',
        ]]),
        d.panel('Operation latency (p99)', 's', [[
          'histogram_quantile(0.99, sum by (le, operation) (rate(objstore_bucket_operation_duration_seconds_bucket{cluster=~"$cluster", namespace=~"$namespace"}[$__rate_interval])))',
          '{{operation}}',
        ]]),
      ]),
      d.row('Ingester: block shipping', [
        d.panel('Blocks uploaded / s', 'ops', [[rate('meridian_ingester_shipper_uploads_total', 'ingester', 'pod'), '{{pod}}']]),
        d.panel('Upload failures / s', 'ops', [[rate('meridian_ingester_shipper_upload_failures_total', 'ingester', 'pod'), '{{pod}}']]),
        d.panel('Upload duration (p99)', 's', [[
          'histogram_quantile(0.99, sum by (le) (rate(meridian_ingester_shipper_upload_duration_seconds_bucket{%s}[$__rate_interval])))' % sel('ingester'),
          'p99',
        ]]),
      ]),
      d.row('Ingester: shipping age', [
        d.panel('Time since the last upload', 's', [[
          'time() - max by (pod) (meridian_ingester_shipper_last_successful_upload_timestamp_seconds{%s} > 0)' % sel('ingester'),
          '{{pod}}',
        ]]),
        d.panel('Shipping rounds failed / s', 'ops', [[rate('meridian_ingester_ship_failures_total', 'ingester', 'pod'), '{{pod}}']]),
      ]),
      d.row('Compactor', [
        d.panel('Compactor runs / s by outcome', 'ops', [[rate('meridian_compactor_runs_total', 'compactor', 'status'), '{{status}}']]),
        d.panel('Blocks compacted, marked and deleted / s', 'ops', [
          [rate('meridian_compactor_blocks_compacted_total', 'compactor', 'job'), 'compacted'],
          [rate('meridian_compactor_blocks_marked_for_deletion_total', 'compactor', 'job'), 'marked for deletion'],
          [rate('meridian_compactor_blocks_deleted_total', 'compactor', 'job'), 'deleted'],
          [rate('meridian_compactor_partial_blocks_deleted_total', 'compactor', 'job'), 'partial uploads deleted'],
          [rate('meridian_compactor_block_failures_total', 'compactor', 'job'), 'failures'],
        ]),
        d.panel('Time since the last successful run', 's', [[
          'time() - max by (pod) (meridian_compactor_last_successful_run_timestamp_seconds{%s} > 0)' % sel('compactor'),
          '{{pod}}',
        ]]),
      ]),
      d.row('Compactor: tenants and groups', [
        d.panel('Tenants processed / s by outcome', 'ops', [[rate('meridian_compactor_tenants_processed_total', 'compactor', 'status'), '{{status}}']], stack=true),
        d.panel('Group compaction duration (p99)', 's', [[
          'histogram_quantile(0.99, sum by (le) (rate(meridian_compactor_compaction_duration_seconds_bucket{%s}[$__rate_interval])))' % sel('compactor'),
          'p99',
        ]], description='Download, compact and upload of one group of blocks.'),
      ]),
      d.row('Store-gateway: blocks in object storage', [
        d.panel('Blocks loaded', 'short', [['sum by (pod) (meridian_storegateway_blocks_loaded{%s})' % sel('store_gateway'), '{{pod}}']]),
        d.panel('Sync and block load failures / s', 'ops', [
          [rate('meridian_storegateway_bucket_sync_failures_total', 'store_gateway', 'pod'), 'sync {{pod}}'],
          [rate('meridian_storegateway_block_load_failures_total', 'store_gateway', 'pod'), 'load {{pod}}'],
          [rate('meridian_querier_bucket_sync_failures_total', 'querier', 'pod'), 'querier listing {{pod}}'],
        ]),
        d.panel('Sync duration (p99)', 's', [[
          'histogram_quantile(0.99, sum by (le) (rate(meridian_storegateway_bucket_sync_duration_seconds_bucket{%s}[$__rate_interval])))' % sel('store_gateway'),
          'p99',
        ]]),
      ]),
    ]),

    'meridian-ring.json': d.dashboard('Meridian / Ring and memberlist', 'meridian-ring', [
      d.row('Ingester ring', [
        d.panel('Ingesters by state (as distributors and queriers see them)', 'short', [[
          'max by (state) (meridian_ring_members{cluster=~"$cluster", namespace=~"$namespace", name="ingester"})',
          '{{state}}',
        ]]),
        d.panel('Tokens in the ring', 'short', [[
          'max by (name) (meridian_ring_tokens_total{cluster=~"$cluster", namespace=~"$namespace"})',
          '{{name}}',
        ]]),
        d.panel('Oldest heartbeat age by state', 's', [[
          'time() - min by (state) (meridian_ring_oldest_member_timestamp{cluster=~"$cluster", namespace=~"$namespace", name="ingester"} > 0)',
          '{{state}}',
        ]]),
      ]),
      d.row('Memberlist', [
        d.panel('Members seen by each process', 'short', [[
          'meridian_memberlist_client_cluster_members_count{%s}' % sel('gossip'),
          '{{pod}}',
        ]]),
        d.panel('Node health score (0 is best)', 'short', [[
          'max by (pod) (meridian_memberlist_client_cluster_node_health_score{%s})' % sel('gossip'),
          '{{pod}}',
        ]]),
        d.panel('Gossip traffic', 'Bps', [
          [rate('meridian_memberlist_tcp_transport_sent_bytes_total', 'gossip', 'job'), 'sent {{job}}'],
          [rate('meridian_memberlist_tcp_transport_received_bytes_total', 'gossip', 'job'), 'received {{job}}'],
        ]),
      ]),
      d.row('Ring KV store', [
        d.panel('KV operations / s', 'ops', [['sum by (kv_name, operation) (rate(meridian_kv_request_duration_seconds_count{cluster=~"$cluster", namespace=~"$namespace"}[$__rate_interval]))', '{{kv_name}} {{operation}}']]),
        d.panel('KV errors / s', 'ops', [['sum by (kv_name, status_code) (rate(meridian_kv_request_duration_seconds_count{cluster=~"$cluster", namespace=~"$namespace", status_code!~"2.."}[$__rate_interval]))', '{{kv_name}} {{status_code}}']]),
        d.panel('KV latency (p99)', 's', [['histogram_quantile(0.99, sum by (le, kv_name) (rate(meridian_kv_request_duration_seconds_bucket{cluster=~"$cluster", namespace=~"$namespace"}[$__rate_interval])))', '{{kv_name}}']]),
      ]),
    ]),

    'meridian-tenants.json': d.dashboard('Meridian / Tenants and limits', 'meridian-tenants', [
      d.row('Ingestion per tenant', [
        d.panel('Samples / s (top 10 tenants)', 'short', [['topk(10, sum by (tenant) (cluster_namespace_tenant:meridian_distributor_received_samples:rate5m{cluster=~"$cluster", namespace=~"$namespace"}))', '{{tenant}}']]),
        d.panel('Requests / s (top 10 tenants)', 'reqps', [['topk(10, %s)' % rate('meridian_distributor_received_requests_total', 'distributor', 'tenant'), '{{tenant}}']]),
        d.panel('Bytes received / s (top 10 tenants)', 'Bps', [['topk(10, %s)' % rate('meridian_distributor_received_bytes_total', 'distributor', 'tenant'), '{{tenant}}']]),
      ]),
      d.row('Limits hit', [
        d.panel('Samples discarded / s by tenant and reason', 'short', [[rate('meridian_discarded_samples_total', 'distributor', 'tenant, reason'), '{{tenant}} {{reason}}']]),
        d.panel('Samples rejected by ingesters / s by tenant and reason', 'short', [[rate('meridian_ingester_rejected_samples_total', 'ingester', 'tenant, reason'), '{{tenant}} {{reason}}']]),
        d.panel('Queries refused with 429 / s', 'reqps', [[rate('meridian_frontend_rejected_requests_total', 'query_frontend', 'reason'), '{{reason}}']]),
      ]),
      d.row('Tenants in ingesters', [
        d.panel('In-memory series per ingester', 'short', [['sum by (pod) (meridian_ingester_memory_series{%s})' % sel('ingester'), '{{pod}}']]),
        d.panel('Open tenant TSDBs per ingester', 'short', [['sum by (pod) (meridian_ingester_tenants{%s})' % sel('ingester'), '{{pod}}']]),
        d.panel('Authentication failures / s', 'reqps', [['sum by (reason) (rate(meridian_auth_failures_total{cluster=~"$cluster", namespace=~"$namespace"}[$__rate_interval]))', '{{reason}}']]),
      ]),
    ]),

    'meridian-rules.json': d.dashboard('Meridian / Ruler & Alertmanager', 'meridian-rules', [
      d.row('Ruler: evaluations', [
        d.panel('Rule evaluations / s by tenant', 'ops', [[rate('prometheus_rule_evaluations_total', 'ruler', 'tenant'), '{{tenant}}']], stack=true),
        d.panel('Failed evaluations / s by tenant and group', 'ops', [[rate('prometheus_rule_evaluation_failures_total', 'ruler', 'tenant, rule_group'), '{{tenant}} {{rule_group}}']], description='A write the distributor refuses counts too (docs/ruler.md).'),
        d.panel('Missed iterations / s by tenant and group', 'ops', [[rate('prometheus_rule_group_iterations_missed_total', 'ruler', 'tenant, rule_group'), '{{tenant}} {{rule_group}}']], description='An evaluation that outlasts the interval skips the next ones.'),
      ]),
      d.row('Ruler: groups', [
        d.panel('Evaluation duration (slowest 10 groups)', 's', [['topk(10, max by (tenant, rule_group) (prometheus_rule_group_last_duration_seconds{%s}))' % sel('ruler'), '{{tenant}} {{rule_group}}']]),
        d.panel('Rule groups owned by each ruler', 'short', [['sum by (pod) (meridian_ruler_owned_rule_groups{%s})' % sel('ruler'), '{{pod}}']], description='The ruler ring shards the groups; a dead ruler hands its groups over after the ring heartbeat timeout.'),
        d.panel('Alerts sent to the Alertmanagers / s', 'ops', [
          [rate('meridian_ruler_notifications_sent_total', 'ruler', 'alertmanager'), 'sent {{alertmanager}}'],
          [rate('meridian_ruler_notifications_errors_total', 'ruler', 'alertmanager'), 'not sent {{alertmanager}}'],
          [rate('meridian_ruler_notifications_dropped_total', 'ruler', 'job'), 'dropped (queue full)'],
        ]),
      ]),
      d.row('Alertmanager: notifications', [
        d.panel('Notifications / s by integration', 'ops', [[rate('meridian_alertmanager_notifications_total', 'alertmanager', 'integration'), '{{integration}}']], stack=true),
        d.panel('Failed notifications / s by tenant and integration', 'ops', [[rate('meridian_alertmanager_notifications_failed_total', 'alertmanager', 'tenant, integration'), '{{tenant}} {{integration}}']], description='Failed after every retry.'),
        d.panel('Notification latency (p99)', 's', [[
          'histogram_quantile(0.99, sum by (le, integration) (rate(meridian_alertmanager_notification_latency_seconds_bucket{%s}[$__rate_interval])))' % sel('alertmanager'),
          '{{integration}}',
        ]]),
      ]),
      d.row('Alertmanager: tenants', [
        d.panel('Alerts received / s by status', 'ops', [[rate('meridian_alertmanager_alerts_received_total', 'alertmanager', 'status'), '{{status}}']], stack=true),
        d.panel('Active silences by tenant', 'short', [['sum by (tenant) (meridian_alertmanager_silences{%s})' % sel('alertmanager', ', state="active"'), '{{tenant}}']]),
        d.panel('Tenants running', 'short', [['sum by (pod) (meridian_alertmanager_tenants{%s})' % sel('alertmanager'), '{{pod}}']]),
      ]),
    ]),

    'meridian-resources.json': d.dashboard('Meridian / Resources', 'meridian-resources', [
      d.row('CPU', [
        d.panel('CPU by job', 'short', [['sum by (job) (rate(process_cpu_seconds_total{cluster=~"$cluster", namespace=~"$namespace", job=~"($namespace)/.*"}[$__rate_interval]))', '{{job}}']], description='Cores used.'),
        d.panel('CPU by pod', 'short', [['sum by (pod) (rate(process_cpu_seconds_total{cluster=~"$cluster", namespace=~"$namespace", job=~"($namespace)/.*"}[$__rate_interval]))', '{{pod}}']]),
        d.panel('Ingester CPU-seconds per million samples appended', 'short', [[
          '1e6 * sum(rate(process_cpu_seconds_total{%s}[$__rate_interval])) / sum(rate(meridian_ingester_appended_samples_total{%s}[$__rate_interval]))' % [sel('ingester'), sel('ingester')],
          'CPU-s / M samples',
        ]], description='docs/benchmarks.md: about 3.3 per million copies in the RF 3 cluster.'),
      ]),
      d.row('Memory', [
        d.panel('Resident memory by pod', 'bytes', [['max by (pod) (process_resident_memory_bytes{cluster=~"$cluster", namespace=~"$namespace", job=~"($namespace)/.*"})', '{{pod}}']]),
        d.panel('Go heap in use by pod', 'bytes', [['max by (pod) (go_memstats_heap_inuse_bytes{cluster=~"$cluster", namespace=~"$namespace", job=~"($namespace)/.*"})', '{{pod}}']]),
        d.panel('Ingester RSS per in-memory series', 'bytes', [[
          'cluster_namespace_pod:meridian_ingester_rss_bytes_per_series:ratio{cluster=~"$cluster", namespace=~"$namespace"}',
          '{{pod}}',
        ]], description='Target 3 KiB (docs/benchmarks.md).'),
      ]),
      d.row('Runtime', [
        d.panel('Goroutines', 'short', [['max by (pod) (go_goroutines{cluster=~"$cluster", namespace=~"$namespace", job=~"($namespace)/.*"})', '{{pod}}']]),
        d.panel('Open file descriptors', 'short', [['max by (pod) (process_open_fds{cluster=~"$cluster", namespace=~"$namespace", job=~"($namespace)/.*"})', '{{pod}}']]),
        d.panel('Build versions', 'short', [['count by (version) (meridian_build_info{cluster=~"$cluster", namespace=~"$namespace"})', '{{version}}']]),
      ]),
    ]),
  },
}
