#!/usr/bin/env bash
# Builds the `distribution` container registry (github.com/distribution/distribution/v3,
# cmd/registry) from the Go module proxy at the pinned version, once: the tests of
# registry pulls run it on loopback. The binary lands in
# $LELANTOS_CACHE_DIR/bin/registry-$REGISTRY_VERSION; registry is a link to it. A cold
# build takes about 3.5 minutes on 2 cores (most of it downloading the modules of its
# cloud storage drivers); stripped, the binary is about 55 MB.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
REGISTRY_VERSION=v3.1.2
bin="$LELANTOS_CACHE_DIR/bin"
target="$bin/registry-$REGISTRY_VERSION"
if [ ! -x "$target" ]; then
  log "building the test registry $REGISTRY_VERSION from the Go module proxy (about 3 minutes, once)"
  mkdir -p "$bin"
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN="$tmp" with_progress "building the registry" 210 \
    go install -trimpath -ldflags='-s -w' "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
  mv "$tmp/registry" "$target"
fi
ln -sfn "$(basename "$target")" "$bin/registry"
