// Minimal Grafana dashboard builder in plain jsonnet (grafonnet cannot be
// fetched here). Rows are 24 units wide; a row's panels share it evenly, so
// the RED layout reads rate, errors, latency from left to right.
{
  local ds = { type: 'prometheus', uid: '${datasource}' },

  dashboard(title, uid, rows, tags=['meridian']):: {
    local layout = std.foldl(function(acc, row) {
      y: acc.y + 1 + (if std.length(row.panels) > 0 then 8 else 0),
      panels: acc.panels + [{
        type: 'row',
        title: row.title,
        collapsed: false,
        gridPos: { x: 0, y: acc.y, w: 24, h: 1 },
        panels: [],
      }] + [
        row.panels[i] {
          gridPos: {
            x: i * std.floor(24 / std.length(row.panels)),
            y: acc.y + 1,
            w: std.floor(24 / std.length(row.panels)),
            h: 8,
          },
        }
        for i in std.range(0, std.length(row.panels) - 1)
      ],
    }, rows, { y: 0, panels: [] }),

    title: title,
    uid: uid,
    tags: tags,
    editable: true,
    schemaVersion: 39,
    timezone: 'utc',
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    panels: [layout.panels[i] { id: i + 1 } for i in std.range(0, std.length(layout.panels) - 1)],
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Data source',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          hide: 0,
        },
        $.queryVar('cluster', 'label_values(meridian_build_info, cluster)'),
        $.queryVar('namespace', 'label_values(meridian_build_info{cluster=~"$cluster"}, namespace)'),
      ],
    },
  },

  queryVar(name, query):: {
    name: name,
    label: name,
    type: 'query',
    datasource: ds,
    query: { query: query, refId: name },
    definition: query,
    refresh: 2,
    includeAll: true,
    multi: true,
    allValue: '.+',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    sort: 1,
  },

  row(title, panels):: { title: title, panels: panels },

  // A time series panel. targets: [[expr, legend], ...].
  panel(title, unit, targets, description='', stack=false, min=0):: {
    type: 'timeseries',
    title: title,
    description: description,
    datasource: ds,
    fieldConfig: {
      defaults: {
        unit: unit,
        min: min,
        custom: {
          drawStyle: 'line',
          lineWidth: 1,
          fillOpacity: if stack then 60 else 10,
          stacking: { mode: if stack then 'normal' else 'none', group: 'A' },
          showPoints: 'never',
        },
      },
      overrides: [],
    },
    options: {
      legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
    targets: [
      {
        datasource: ds,
        expr: targets[i][0],
        legendFormat: targets[i][1],
        refId: std.char(std.codepoint('A') + i),
      }
      for i in std.range(0, std.length(targets) - 1)
    ],
  },

  // RED panels of one route of one job, from the server's request histogram
  // (meridian_request_duration_seconds: method, route, status_code).
  selector(cfg, job, extra=''):: 'cluster=~"$cluster", namespace=~"$namespace", job=~"($namespace)/%s"%s' % [cfg.job_names[job], extra],

  redPanels(cfg, job, route, what):: [
    $.panel('%s requests / s' % what, 'reqps', [[
      'sum by (status_code) (rate(meridian_request_duration_seconds_count{%s}[$__rate_interval]))' % $.selector(cfg, job, ', route=~"%s"' % route),
      '{{status_code}}',
    ]], stack=true),
    $.panel('%s errors' % what, 'percentunit', [[
      |||
        sum(rate(meridian_request_duration_seconds_count{%s}[$__rate_interval]))
        /
        sum(rate(meridian_request_duration_seconds_count{%s}[$__rate_interval]))
      ||| % [$.selector(cfg, job, ', route=~"%s", status_code=~"5..|error"' % route), $.selector(cfg, job, ', route=~"%s"' % route)],
      'error ratio',
    ]], description='Share of requests answered 5xx (gRPC: error).'),
    $.panel('%s latency' % what, 's', [
      [
        'histogram_quantile(0.99, sum by (le) (cluster_namespace_job_route:meridian_request_duration_seconds_bucket:sum_rate{%s}))' % $.selector(cfg, job, ', route=~"%s"' % route),
        'p99',
      ],
      [
        'histogram_quantile(0.50, sum by (le) (cluster_namespace_job_route:meridian_request_duration_seconds_bucket:sum_rate{%s}))' % $.selector(cfg, job, ', route=~"%s"' % route),
        'p50',
      ],
      [
        |||
          sum(cluster_namespace_job_route:meridian_request_duration_seconds_sum:sum_rate{%s})
          /
          sum(cluster_namespace_job_route:meridian_request_duration_seconds_count:sum_rate{%s})
        ||| % [$.selector(cfg, job, ', route=~"%s"' % route), $.selector(cfg, job, ', route=~"%s"' % route)],
        'mean',
      ],
    ]),
  ],
}
