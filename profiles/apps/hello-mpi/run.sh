#!/bin/sh
# Sample batch app: prints where it runs and that the workspace is writable.
set -eu
ws=${WORKSPACE:-/workspace}
echo "hello from $(hostname) ($(nproc) cpus)"
tmp=$(mktemp -p "$ws")
echo ok > "$tmp" && rm -f "$tmp" && echo "workspace $ws is writable"
