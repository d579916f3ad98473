#!/usr/bin/env bash
# Builds versitygw, the S3 server used by integration/s3_test.go (it checks
# SigV4 signatures and stores buckets as directories, which the tests read
# directly). It is built in a scratch module so its dependencies never touch
# Meridian's go.mod. The binary is cached and reused; the last line printed is
# its path.
#
#   MERIDIAN_CACHE   cache directory (default: $HOME/.cache/meridian)
set -euo pipefail

version=v1.8.0
module=github.com/versity/versitygw

# shellcheck source=scripts/toolcache.sh
source "$(dirname "${BASH_SOURCE[0]}")/toolcache.sh"
toolcache_begin build-versitygw "versitygw-$version" versitygw
go get "$module/cmd/versitygw@$version" >&2
toolcache_build "$module/cmd/versitygw"
