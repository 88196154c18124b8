#!/usr/bin/env bash
# Builds Lelantos' container image for Kubernetes (deploy/kubernetes), without a
# container engine or a registry: one image for the control plane, the node agent and
# the PostgreSQL of the try-it-out StatefulSet. Its layers:
#   /                   Debian 12 minbase with iptables, e2fsprogs and PostgreSQL 15
#   /opt/lelantos/base  the base template's root filesystem (scripts/build-base.sh)
#   /opt/lelantos/bin   lelantos, envd, interpreter and the pinned runsc
# Each layer is kept under $LELANTOS_CACHE_DIR/image, named by what went into it, so
# only what changed is written again. The image is named lelantos.dev/lelantos:dev;
# its archive (the format of `docker save`, which `ctr images import` and registry
# tools take) is written to bin/lelantos-image.tar, whose path is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
IMAGE_REF=${LELANTOS_IMAGE_REF:-lelantos.dev/lelantos:dev}
cache="$LELANTOS_CACHE_DIR/image"
mkdir -p "$cache/layers"
exec 8>"$cache/.build.lock"
flock 8
base=$(bash scripts/build-base.sh)
bash scripts/install-runsc.sh
bash scripts/build.sh

# The image's own root, from Debian's packages, once per recipe.
pkgs="iptables e2fsprogs postgresql ca-certificates procps"
root="$cache/root-$(printf '%s|bookworm|v1' "$pkgs" | sha256sum | cut -c1-12)"
if [ ! -f "$root/.lelantos-complete" ]; then
  log "building the image's root filesystem: debootstrap of Debian 12 with $pkgs (about 2 minutes, once)"
  rm -rf "$root.tmp"
  debootstrap --variant=minbase --include="${pkgs// /,}" bookworm "$root.tmp" $(debian_mirror) >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  chroot "$root.tmp" /bin/sh -c 'apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin'
  touch "$root.tmp/.lelantos-complete"
  mv "$root.tmp" "$root"
fi

bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
cp bin/lelantos bin/envd bin/interpreter "$bins/"
cp -L "$LELANTOS_CACHE_DIR/bin/runsc" "$bins/runsc"
ociarchive=$(realpath bin/ociarchive)
binsum=$(cd "$bins" && sha256sum lelantos envd interpreter runsc | sha256sum | cut -c1-12)

# layer NAME DIR AT: the cached layer NAME of DIR at AT, written once.
layer() {
  local out="$cache/layers/$1.tar.gz"
  if [ ! -f "$out" ]; then
    log "writing the image layer $1 ($3)"
    "$ociarchive" layer --out "$out" --at "$3" "$2"
  fi
  echo "$out"
}
l_root=$(layer "$(basename "$root")" "$root" /)
l_base=$(layer "$(basename "$base")" "$base" /opt/lelantos/base)
l_bins=$(layer "bin-$binsum" "$bins" /opt/lelantos/bin)
# Layers of binaries no image uses any more.
find "$cache/layers" -name 'bin-*.tar.gz' ! -name "bin-$binsum.tar.gz" -mmin +60 -delete
mkdir -p bin
"$ociarchive" image --out bin/lelantos-image.tar --ref "$IMAGE_REF" \
  --entrypoint /opt/lelantos/bin/lelantos --env PATH=/opt/lelantos/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LELANTOS_CACHE_DIR=/var/cache/lelantos "$l_root" "$l_base" "$l_bins"
realpath bin/lelantos-image.tar
