#!/usr/bin/env bash
# Builds the `base` template's root filesystem from Debian's packages with debootstrap,
# once, into $LELANTOS_CACHE_DIR/rootfs/base-<hash of the recipe>, then the login
# profile on top of it, in a tree of hard links to the first:
# $LELANTOS_CACHE_DIR/rootfs/base-<hash of both>. Pass --rebuild to build both anew.
# Prints the finished tree's path on stdout; progress goes to stderr.
#
# The tree behaves like E2B's base image for what agents do first: `user` (uid 1000)
# has passwordless sudo, `python` is python3, pip installs for `user` without a venv
# (no EXTERNALLY-MANAGED marker), `npm install -g` works as `user` (it owns
# /usr/local), and gcc, make and the C headers are there for native packages.
#
# The login profile is Debian's, made cheaper where it forks without need: the e2b
# clients run every command as `bash -l -c`, and in gVisor a fork and exec costs
# milliseconds. /etc/profile asks `id -u` in a subshell where bash knows $EUID, and
# root's ~/.profile runs `mesg n` even when no terminal is there for it to change.
# What a login shell ends up with (PATH, PS1, the terminal's mode) is the same.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
recipe_pkgs="bash coreutils procps iproute2 python3 python3-pip python3-venv python3-dev python-is-python3
  nodejs npm git curl wget ca-certificates sudo iputils-ping less xz-utils unzip zip jq build-essential"
recipe_pkgs=$(echo $recipe_pkgs)
# What goes into the tree, after the packages; its text is part of the cache key.
setup='
  set -e
  id user >/dev/null 2>&1 || useradd -m -u 1000 -s /bin/bash user
  echo "user ALL=(ALL:ALL) NOPASSWD: ALL" > /etc/sudoers.d/user
  chmod 0440 /etc/sudoers.d/user
  rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
  mkdir -p /usr/local/lib/node_modules
  chown -R user:user /usr/local
  printf "127.0.0.1\tlocalhost\n127.0.1.1\tlelantos\n::1\tlocalhost ip6-localhost ip6-loopback\n" > /etc/hosts
  apt-get clean
  rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
'
# The login profile, applied to a tree of hard links to the packages' tree: every
# file it changes is written anew and renamed into place (sed -i), never written
# through a link. Its text is part of the second tree's cache key.
profile='
  set -e
  sed -i "s/if \[ \"\$(id -u)\" -eq 0 \]; then/if [ \"\${EUID:-\$(id -u)}\" -eq 0 ]; then/" etc/profile
  grep -q "EUID:-" etc/profile
  ! grep -q "if \[ \"\$(id -u)\"" etc/profile
  sed -i "s|^mesg n 2> /dev/null \|\| true$|if [ -t 0 ] \|\| [ -t 1 ]; then mesg n 2> /dev/null \|\| true; fi|" root/.profile
  grep -q "^if \[ -t 0 \] || \[ -t 1 \]; then mesg n" root/.profile
'
hash=$(printf '%s|%s|bookworm|v3' "$recipe_pkgs" "$setup" | sha256sum | cut -c1-12)
pkgs="$LELANTOS_CACHE_DIR/rootfs/base-$hash"
final=$(printf '%s|%s|v1' "$hash" "$profile" | sha256sum | cut -c1-12)
final="$LELANTOS_CACHE_DIR/rootfs/base-$final"
if [ "${1:-}" = "--rebuild" ]; then rm -rf "$pkgs" "$final"; fi
if [ -f "$final/.lelantos-complete" ]; then echo "$final"; exit 0; fi

# profile_tree: the final tree, from the packages' tree, in about a second.
profile_tree() {
  local tmp="$final.tmp"
  rm -rf "$tmp"
  cp -al "$pkgs" "$tmp"
  rm -f "$tmp/.lelantos-complete"
  (cd "$tmp" && sh -c "$profile")
  touch "$tmp/.lelantos-complete"
  mv "$tmp" "$final"
  log "base template: login profile applied: $final"
}
out=$pkgs
mkdir -p "$LELANTOS_CACHE_DIR/rootfs"
# One build at a time: a second caller waits for the first and uses its tree.
exec 9>"$LELANTOS_CACHE_DIR/rootfs/.build.lock"
if ! flock -n 9; then
  log "waiting for another build of the base template to finish"
  flock 9
fi
if [ -f "$final/.lelantos-complete" ]; then echo "$final"; exit 0; fi
if [ -f "$out/.lelantos-complete" ]; then profile_tree; echo "$final"; exit 0; fi
tmp="$out.tmp"
if mountpoint -q "$tmp/proc" 2>/dev/null; then umount "$tmp/proc"; fi
rm -rf "$tmp"
started=$(date +%s)
log "building the base template: step 1/3, debootstrap of Debian 12 (about 2 minutes, once)"
mirror=$(debian_mirror)
n=0
debootstrap --variant=minbase bookworm "$tmp" $mirror 2>&1 |
  while IFS= read -r line; do
    case "$line" in
      I:\ Retrieving*|I:\ Validating*|I:\ Extracting*) ;;
      I:\ Unpacking*|I:\ Configuring*)
        n=$((n + 1))
        if [ $((n % 20)) = 0 ]; then printf '  debootstrap: %d packages unpacked or configured\n' "$n" >&2; fi ;;
      *) printf '  %s\n' "$line" >&2 ;;
    esac
  done
test -x "$tmp/bin/bash"
mount -t proc proc "$tmp/proc"
trap 'umount "$tmp/proc" 2>/dev/null || true' EXIT
log "building the base template: step 2/3, installing $(echo $recipe_pkgs | wc -w) packages ($(($(date +%s) - started)) s so far)"
DEBIAN_FRONTEND=noninteractive chroot "$tmp" /bin/sh -c "
  set -e
  apt-get update -qq
  apt-get install -y -q --no-install-recommends $recipe_pkgs
" 2>&1 | while IFS= read -r line; do
  case "$line" in
    Get:*|Selecting*|Preparing*|Unpacking*|Setting\ up*|Processing*|"(Reading database"*) ;;
    *"newly installed"*|*"to get"*) printf '  %s\n' "$line" >&2 ;;
    *) ;;
  esac
done
log "building the base template: step 3/3, users and settings ($(($(date +%s) - started)) s so far)"
chroot "$tmp" /bin/sh -c "$setup"
echo "lelantos" > "$tmp/etc/hostname"
mkdir -p "$tmp/lelantos"
# gVisor mounts a tmpfs (the sandbox's memory) over an empty /tmp; keep it on disk.
echo "Keeps /tmp on the sandbox's disk: gVisor puts an empty /tmp in memory." > "$tmp/tmp/.lelantos-tmp-on-disk"
chmod 0444 "$tmp/tmp/.lelantos-tmp-on-disk"
umount "$tmp/proc"
touch "$tmp/.lelantos-complete"
mv "$tmp" "$out"
profile_tree
log "base template ready in $(($(date +%s) - started)) s: $final"
echo "$final"
