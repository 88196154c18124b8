#!/usr/bin/env bash
# Builds the `base` template's root filesystem from Debian's packages with debootstrap,
# once, into $LELANTOS_CACHE_DIR/rootfs/base-<recipe hash>. Pass --rebuild to build anew.
# Prints the finished tree's path on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
recipe_pkgs="bash coreutils procps iproute2 python3 python3-pip python3-venv nodejs npm git curl ca-certificates sudo iputils-ping less xz-utils"
hash=$(printf '%s|%s|v2' "$recipe_pkgs" bookworm | sha256sum | cut -c1-12)
out="$LELANTOS_CACHE_DIR/rootfs/base-$hash"
if [ "${1:-}" = "--rebuild" ]; then rm -rf "$out"; fi
if [ -f "$out/.lelantos-complete" ]; then echo "$out"; exit 0; fi
mkdir -p "$LELANTOS_CACHE_DIR/rootfs"
tmp="$out.tmp"
rm -rf "$tmp"
log "building the base template with debootstrap (a few minutes, once)"
mirror="${DEBIAN_MIRROR:-}"
[ -n "$mirror" ] || mirror=$(awk '/^deb / && $3 ~ /bookworm$/ {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
if [ -z "$mirror" ]; then  # deb822 sources, as on Debian 12 images
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
debootstrap --variant=minbase bookworm "$tmp" $mirror 2>&1 |
  while IFS= read -r line; do case "$line" in I:\ Retrieving*|I:\ Validating*) ;; *) printf '  %s\n' "$line" >&2 ;; esac; done
test -x "$tmp/bin/bash"
mount -t proc proc "$tmp/proc"
trap 'umount "$tmp/proc" 2>/dev/null || true' EXIT
log "installing into the base template: $recipe_pkgs"
DEBIAN_FRONTEND=noninteractive chroot "$tmp" /bin/sh -c "
  set -e
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $recipe_pkgs >/dev/null
" 2>&1 | sed 's/^/  /' >&2
chroot "$tmp" /bin/sh -c '
  set -e
  id user >/dev/null 2>&1 || useradd -m -u 1000 -s /bin/bash user
  echo "user ALL=(ALL:ALL) NOPASSWD: ALL" > /etc/sudoers.d/user
  chmod 0440 /etc/sudoers.d/user
  apt-get clean
  rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
'
echo "lelantos" > "$tmp/etc/hostname"
mkdir -p "$tmp/lelantos"
# gVisor mounts a tmpfs (the sandbox's memory) over an empty /tmp; keep it on disk.
echo "Keeps /tmp on the sandbox's disk: gVisor puts an empty /tmp in memory." > "$tmp/tmp/.lelantos-tmp-on-disk"
chmod 0444 "$tmp/tmp/.lelantos-tmp-on-disk"
umount "$tmp/proc"
touch "$tmp/.lelantos-complete"
mv "$tmp" "$out"
log "base template ready: $out"
echo "$out"
