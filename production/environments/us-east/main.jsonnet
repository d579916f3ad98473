// us-east: a smaller region. Only the bucket, replica counts and zones
// differ from the library's defaults.
local meridian = import 'meridian.libsonnet';

(meridian {
   _config+:: {
     cluster: 'us-east',
     s3+: { bucket_name: 'meridian-blocks-us-east', region: 'us-east-1', endpoint: 's3.us-east-1.amazonaws.com' },
     zones: [
       { name: 'zone-a', node_zone: 'us-east-1a' },
       { name: 'zone-b', node_zone: 'us-east-1b' },
       { name: 'zone-c', node_zone: 'us-east-1d' },
     ],
     active_series: 1500000,
     ingester_replicas_per_zone: 1,
     distributor_replicas: 2,
     querier_replicas: 2,
     query_frontend_replicas: 2,
   },
 }).list
