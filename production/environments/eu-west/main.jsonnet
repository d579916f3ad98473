// eu-west: the larger region. Only the bucket, replica counts and zones
// differ from the library's defaults.
local meridian = import 'meridian.libsonnet';

(meridian {
   _config+:: {
     cluster: 'eu-west',
     s3+: { bucket_name: 'meridian-blocks-eu-west', region: 'eu-west-1', endpoint: 's3.eu-west-1.amazonaws.com' },
     zones: [
       { name: 'zone-a', node_zone: 'eu-west-1a' },
       { name: 'zone-b', node_zone: 'eu-west-1b' },
       { name: 'zone-c', node_zone: 'eu-west-1c' },
     ],
     active_series: 6000000,
     ingester_replicas_per_zone: 3,
     distributor_replicas: 4,
     querier_replicas: 4,
     store_gateway_replicas: 3,
     query_frontend_replicas: 2,
   },
 }).list
