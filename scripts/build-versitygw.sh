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

command -v go >/dev/null 2>&1 || { echo "build-versitygw: 'go' is not on PATH" >&2; exit 1; }

cache_root=${MERIDIAN_CACHE:-$HOME/.cache/meridian}
dir="$cache_root/versitygw-$version"
bin="$dir/versitygw"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
scratch="$dir/src"
rm -rf "$scratch"
mkdir -p "$scratch"
cd "$scratch"

echo "build-versitygw: building versitygw $version in $scratch (takes several minutes)" >&2
go mod init meridian.local/versitygw >/dev/null 2>&1
go get "$module/cmd/versitygw@$version" >&2
go build -o "$bin.tmp" "$module/cmd/versitygw" >&2
mv "$bin.tmp" "$bin"
echo "build-versitygw: built $bin" >&2
echo "$bin"
