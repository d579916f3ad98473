// Meridian alerts. Each has a section in runbooks.md named after it.
{
  local cfg = self._config,
  local runbook(name) = 'production/mixin/runbooks.md#' + std.asciiLower(name),
  local alert(name, expr, forDuration, severity, summary, description) = {
    alert: name,
    expr: expr,
    'for': forDuration,
    labels: { severity: severity },
    annotations: { summary: summary, description: description, runbook_url: runbook(name) },
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'meridian_alerts',
        rules: [
          alert(
            'MeridianIngesterUnhealthy',
            'min by (cluster, namespace) (meridian_ring_members{name="ingester", state="Unhealthy"}) > 0',
            '15m',
            'critical',
            'Ingesters are unhealthy in the ring.',
            '{{ $value }} ingesters in {{ $labels.cluster }}/{{ $labels.namespace }} have not heartbeated within the heartbeat timeout for 15 minutes.',
          ),
          alert(
            'MeridianWriteErrors',
            |||
              sum by (cluster, namespace) (rate(meridian_request_duration_seconds_count{route="api_v1_push", status_code=~"5.."}[5m]))
              /
              sum by (cluster, namespace) (rate(meridian_request_duration_seconds_count{route="api_v1_push"}[5m]))
              > %g
            ||| % cfg.write_error_ratio,
            '15m',
            'critical',
            'Remote writes are failing.',
            '{{ $value | humanizePercentage }} of remote-write requests to {{ $labels.cluster }}/{{ $labels.namespace }} answer 5xx.',
          ),
          alert(
            'MeridianQueryErrors',
            |||
              sum by (cluster, namespace, job) (rate(meridian_request_duration_seconds_count{route=~"prometheus_api_v1.*", status_code=~"5.."}[5m]))
              /
              sum by (cluster, namespace, job) (rate(meridian_request_duration_seconds_count{route=~"prometheus_api_v1.*"}[5m]))
              > %g
            ||| % cfg.query_error_ratio,
            '15m',
            'warning',
            'Queries are failing.',
            '{{ $value | humanizePercentage }} of queries to {{ $labels.job }} in {{ $labels.cluster }} answer 5xx.',
          ),
          alert(
            'MeridianTenantAtSeriesLimit',
            'sum by (cluster, namespace, tenant) (rate(meridian_ingester_rejected_samples_total{reason="err-meridian-max-series-per-tenant"}[5m])) > 0',
            '15m',
            'warning',
            'A tenant is at its series limit.',
            'Ingesters in {{ $labels.cluster }}/{{ $labels.namespace }} reject new series of tenant {{ $labels.tenant }}: it reached max_global_series_per_tenant.',
          ),
          alert(
            'MeridianIngesterHighMemoryPerSeries',
            |||
              (
                process_resident_memory_bytes
                / on (cluster, namespace, job, pod, instance)
                meridian_ingester_memory_series
              ) > %d
              and on (cluster, namespace, job, pod, instance)
              meridian_ingester_memory_series > %d
            ||| % [cfg.ingester_max_bytes_per_series, cfg.ingester_min_series_for_memory_alert],
            '30m',
            'warning',
            'An ingester uses much more memory per series than planned.',
            'Ingester {{ $labels.pod }} in {{ $labels.cluster }} holds {{ $value | humanize1024 }}B of RSS per in-memory series; capacity is planned at 3 KiB.',
          ),
          alert(
            'MeridianShipperUploadFailures',
            'sum by (cluster, namespace, pod) (rate(meridian_ingester_shipper_upload_failures_total[15m])) > 0',
            '30m',
            'critical',
            'An ingester fails to upload blocks to object storage.',
            'Ingester {{ $labels.pod }} in {{ $labels.cluster }} has been failing block uploads for 30 minutes; blocks pile up on its disk.',
          ),
          alert(
            'MeridianShipperNoRecentUpload',
            |||
              (time() - meridian_ingester_shipper_last_successful_upload_timestamp_seconds > %d)
              and meridian_ingester_shipper_last_successful_upload_timestamp_seconds > 0
              and on (cluster, namespace, job, pod, instance) meridian_ingester_memory_series > 0
            ||| % cfg.shipper_max_seconds_without_upload,
            '15m',
            'warning',
            'An ingester has not uploaded a block for hours.',
            'Ingester {{ $labels.pod }} in {{ $labels.cluster }} last uploaded a block {{ $value | humanizeDuration }} ago while holding series.',
          ),
          alert(
            'MeridianQuerierBucketSyncFailing',
            'sum by (cluster, namespace, pod) (rate(meridian_querier_bucket_sync_failures_total[15m])) > 0',
            '30m',
            'warning',
            'A querier cannot sync blocks from object storage.',
            'Querier {{ $labels.pod }} in {{ $labels.cluster }} fails to list or load blocks; queries over older data may miss them.',
          ),
          alert(
            'MeridianStoreGatewaySyncFailing',
            |||
              sum by (cluster, namespace, pod) (rate(meridian_storegateway_bucket_sync_failures_total[15m])) > 0
              or sum by (cluster, namespace, pod) (rate(meridian_storegateway_block_load_failures_total[15m])) > 0
            |||,
            '30m',
            'warning',
            'A store-gateway cannot sync or load blocks from object storage.',
            'Store-gateway {{ $labels.pod }} in {{ $labels.cluster }} fails to sync the bucket index or to load blocks; queries over older data may fail with err-meridian-store-consistency-check.',
          ),
          alert(
            'MeridianGossipMembersMismatch',
            |||
              min by (cluster, namespace) (meridian_memberlist_client_cluster_members_count)
              < 0.8 * count by (cluster, namespace) (meridian_memberlist_client_cluster_members_count)
            |||,
            '15m',
            'warning',
            'Memberlist gossip is split or lagging.',
            'A process in {{ $labels.cluster }}/{{ $labels.namespace }} sees {{ $value }} gossip members, fewer than 80% of the processes that gossip.',
          ),
          alert(
            'MeridianCompactorNotRunning',
            |||
              time() - (
                meridian_compactor_last_successful_run_timestamp_seconds > 0
                or on (cluster, namespace, job, pod, instance)
                (
                  process_start_time_seconds
                  and on (cluster, namespace, job, pod, instance)
                  meridian_compactor_last_successful_run_timestamp_seconds == 0
                )
              ) > %d
            ||| % cfg.compactor_max_seconds_without_success,
            '15m',
            'critical',
            'The compactor has not completed a run for hours.',
            'Compactor {{ $labels.pod }} in {{ $labels.cluster }}/{{ $labels.namespace }} has not completed a successful run for {{ $value | humanizeDuration }} (since it started, if it never did); it runs every hour.',
          ),
          alert(
            'MeridianCompactorFailing',
            |||
              sum by (cluster, namespace, job, pod) (increase(meridian_compactor_runs_total{status="failure"}[%(w)s])) > 0
              unless on (cluster, namespace, job, pod)
              sum by (cluster, namespace, job, pod) (increase(meridian_compactor_runs_total{status="success"}[%(w)s])) > 0
            ||| % { w: cfg.compactor_failing_window },
            '1h',
            'warning',
            'Compactor runs keep failing.',
            'Every compactor run of {{ $labels.pod }} in {{ $labels.cluster }}/{{ $labels.namespace }} over the last %s failed, and this has lasted for an hour.' % cfg.compactor_failing_window,
          ),
          alert(
            'MeridianCompactorBrokenBlock',
            'max by (cluster, namespace, job, pod) (meridian_compactor_broken_blocks) > 0',
            '0m',
            'critical',
            'A block in object storage lost its meta.json.',
            'Compactor {{ $labels.pod }} in {{ $labels.cluster }}/{{ $labels.namespace }} found {{ $value }} block(s) in the bucket index whose meta.json is unreadable or missing.',
          ),
          alert(
            'MeridianTenantNearSeriesLimit',
            |||
              max by (cluster, namespace, tenant) (
                meridian_ingester_tenant_memory_series
                / on (cluster, namespace, job, pod, instance, tenant)
                (meridian_ingester_tenant_series_limit > 0)
              ) > %g
            ||| % cfg.tenant_series_limit_warning_ratio,
            '15m',
            'warning',
            'A tenant is close to its series limit.',
            'Tenant {{ $labels.tenant }} in {{ $labels.cluster }}/{{ $labels.namespace }} holds {{ $value | humanizePercentage }} of its series limit on its fullest ingester; at 100% new series are rejected.',
          ),
          alert(
            'MeridianIngesterWALCorruption',
            |||
              max by (cluster, namespace, job, pod, tenant) (
                increase(meridian_ingester_tsdb_wal_corruptions_total[1h]) > 0
                or
                (
                  meridian_ingester_tsdb_wal_corruptions_total > 0
                  unless
                  meridian_ingester_tsdb_wal_corruptions_total offset 1h
                )
              )
            |||,
            '0m',
            'warning',
            'An ingester repaired a corrupt WAL.',
            'Ingester {{ $labels.pod }} in {{ $labels.cluster }} found WAL corruption when it opened the TSDB of tenant {{ $labels.tenant }}; samples after the corruption point of that segment may be lost on this replica.',
          ),
          alert(
            'MeridianRulerFailedEvaluations',
            |||
              sum by (cluster, namespace, tenant, rule_group) (rate(prometheus_rule_evaluation_failures_total{job=~".*/%(job)s"}[5m]))
              /
              sum by (cluster, namespace, tenant, rule_group) (rate(prometheus_rule_evaluations_total{job=~".*/%(job)s"}[5m]))
              > %(ratio)g
            ||| % { job: cfg.job_names.ruler, ratio: cfg.ruler_failed_evaluations_ratio },
            '5m',
            'warning',
            'Rule evaluations are failing.',
            '{{ $value | humanizePercentage }} of the evaluations of rule group {{ $labels.rule_group }} of tenant {{ $labels.tenant }} in {{ $labels.cluster }}/{{ $labels.namespace }} fail.',
          ),
          alert(
            'MeridianRulerMissedEvaluations',
            |||
              sum by (cluster, namespace, tenant, rule_group) (increase(prometheus_rule_group_iterations_missed_total{job=~".*/%(job)s"}[5m]))
              /
              sum by (cluster, namespace, tenant, rule_group) (increase(prometheus_rule_group_iterations_total{job=~".*/%(job)s"}[5m]))
              > %(ratio)g
            ||| % { job: cfg.job_names.ruler, ratio: cfg.ruler_missed_iterations_ratio },
            '15m',
            'warning',
            'Rule group iterations are missed.',
            '{{ $value | humanizePercentage }} of the iterations of rule group {{ $labels.rule_group }} of tenant {{ $labels.tenant }} in {{ $labels.cluster }}/{{ $labels.namespace }} are skipped: an evaluation takes longer than the interval.',
          ),
          alert(
            'MeridianAlertmanagerNotificationsFailing',
            |||
              sum by (cluster, namespace, integration) (rate(meridian_alertmanager_notifications_failed_total{job=~".*/%(job)s"}[5m]))
              /
              sum by (cluster, namespace, integration) (rate(meridian_alertmanager_notifications_total{job=~".*/%(job)s"}[5m]))
              > %(ratio)g
            ||| % { job: cfg.job_names.alertmanager, ratio: cfg.alertmanager_failed_notifications_ratio },
            '15m',
            'critical',
            'Alertmanager notifications are failing.',
            '{{ $value | humanizePercentage }} of the {{ $labels.integration }} notifications of the Alertmanager in {{ $labels.cluster }}/{{ $labels.namespace }} fail after every retry: alerts may not reach anyone.',
          ),
        ],
      },
    ],
  },
}
