// One Meridian process (-target=all) with S3 object storage.
local monolith = import 'monolith.libsonnet';

(monolith {
   _config+:: {
     cluster: 'monolith',
     s3+: { bucket_name: 'meridian-blocks-monolith', region: 'eu-west-1', endpoint: 's3.eu-west-1.amazonaws.com' },
   },
 }).list
