// The Meridian monitoring mixin: dashboards, alerts and recording rules.
(import 'config.libsonnet') +
(import 'dashboards.libsonnet') +
(import 'alerts.libsonnet') +
(import 'rules.libsonnet')
