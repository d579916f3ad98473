// Settings of the Meridian mixin. The job matchers are regular expressions
// over the part of the `job` label after "<namespace>/": the scrape config in
// production/README.md sets job="<namespace>/<name label of the pod>", and
// the monolith's pods are named "meridian".
{
  _config+:: {
    job_names: {
      distributor: '(distributor|meridian)',
      ingester: '(ingester.*|meridian)',
      querier: '(querier|meridian)',
      query_frontend: '(query-frontend)',
      compactor: '(compactor|meridian)',
      store_gateway: '(store-gateway|querier|backend|meridian)',
      gossip: '(distributor|ingester.*|querier)',
      ruler: '(ruler|meridian)',
      alertmanager: '(alertmanager|meridian)',
    },
    // Alert thresholds.
    write_error_ratio: 0.01,
    query_error_ratio: 0.01,
    // Twice the 3 KiB per-series target of docs/benchmarks.md.
    ingester_max_bytes_per_series: 6144,
    ingester_min_series_for_memory_alert: 10000,
    // Blocks are cut every 2h; no upload for this long while holding series
    // means blocks are piling up on the ingester's disk.
    shipper_max_seconds_without_upload: 4 * 3600,
    // Three times the compactor's -compactor.compaction-interval (1h, the
    // default, which the manifests keep).
    compactor_max_seconds_without_success: 3 * 3600,
    // Failed runs and no successful one over this window (two runs at 1h).
    compactor_failing_window: '2h',
    // Share of the tenant's per-ingester series limit that warns.
    tenant_series_limit_warning_ratio: 0.8,
    // Share of a rule group's evaluations that may fail, or be missed
    // (an evaluation that outlasts the interval skips the next ones).
    ruler_failed_evaluations_ratio: 0.01,
    ruler_missed_iterations_ratio: 0.01,
    // Share of one integration's notifications that may fail after every
    // retry.
    alertmanager_failed_notifications_ratio: 0.01,
  },
}
