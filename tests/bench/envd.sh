#!/usr/bin/env bash
# Runs envd.mjs (the e2b client measurements) against a Lelantos server started as
# tests/e2e/server.sh starts one, on its own ports, subnet and name prefix, with the
# baseline file server (cmd/benchfs) beside it on loopback.
#   envd.sh OUT_DIR        writes OUT_DIR/envd.json and OUT_DIR/server.log
# scripts/bench.sh runs it in a private network namespace (unshare --net), so the
# server's veths and firewall chains go away with it. Expects bin/ built,
# OUT_DIR/benchfs built, tests/bench/node_modules installed, and LELANTOS_BASE_ROOTFS
# and LELANTOS_CACHE_DIR set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/scripts/lib.sh"
out=$(cd "$1" && pwd)
ip link set lo up
data=$(mktemp -d /tmp/lelantos-bench.XXXXXX)
work=$(mktemp -d /tmp/lelantos-bench-work.XXXXXX)
mkdir -p "$work/fs"
api=127.0.0.1:${BENCH_API_PORT:-3200}
sandbox=127.0.0.1:${BENCH_SANDBOX_PORT:-3201}
server_pid=
fs_pid=

cleanup() {
  if [ -s "$data/client.env" ]; then
    set -a; . "$data/client.env"; set +a
    # Kill whatever a failed run left behind.
    for id in $(curl -s -H "X-API-Key: $E2B_API_KEY" "$E2B_API_URL/v2/sandboxes?state=running,paused" | grep -o '"sandboxID":"[a-z0-9]*"' | cut -d'"' -f4); do
      curl -s -X DELETE -H "X-API-Key: $E2B_API_KEY" "$E2B_API_URL/sandboxes/$id" >/dev/null || true
    done
  fi
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$fs_pid" ]; then kill "$fs_pid" 2>/dev/null || true; fi
  unmount_under "$data"
  cp "$data/server.log" "$out/server.log" 2>/dev/null || true
  rm -rf "$data" "$work"
}
trap cleanup EXIT

"$out/benchfs" -dir "$work/fs" -addr-file "$work/fs.addr" >/dev/null &
fs_pid=$!
"$repo/bin/lelantos" serve --data-dir "$data" --listen "$api" --sandbox-listen "$sandbox" \
  --subnet "${BENCH_SUBNET:-10.237.0.0/16}" --net-prefix lb --base-rootfs "$LELANTOS_BASE_ROOTFS" \
  --runsc "$LELANTOS_CACHE_DIR/bin/runsc" --envd "$repo/bin/envd" >>"$data/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
  if [ -s "$data/client.env" ] && [ -s "$work/fs.addr" ]; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "server exited; its log:" >&2; tail -50 "$data/server.log" >&2; exit 1
  fi
  sleep 0.1
done
if [ ! -s "$data/client.env" ] || [ ! -s "$work/fs.addr" ]; then
  echo "server or file server not ready after 60s" >&2; exit 1
fi
set -a; . "$data/client.env"; set +a
BENCH_LOCAL_URL="http://$(cat "$work/fs.addr")" BENCH_WORK_DIR="$work" \
  node "$here/envd.mjs" >"$out/envd.json"
