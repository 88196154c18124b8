#!/usr/bin/env bash
# Runs cluster.mjs (many nodes, through the npm e2b client) and writes
# OUT_DIR/cluster.json:
#   - creates one by one against a server on SQLite, then against the same server
#     on PostgreSQL (Debian's, started here in a temporary directory);
#   - against that server with a second node (`lelantos node`, which cluster.mjs
#     starts and stops): creates per second with two nodes and with one, and the
#     resume of a sandbox with 200 MiB resident on its node and on the other.
#   cluster.sh OUT_DIR
# Both nodes run on this machine, in the host's network namespace, on their own
# ports, subnets and name prefixes: the figures show the cost of the cluster's
# paths, not more capacity (the two nodes share the CPUs).
# Expects bin/ built, tests/bench/node_modules installed, and LELANTOS_BASE_ROOTFS
# and LELANTOS_CACHE_DIR set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/scripts/lib.sh"
out=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/lelantos-bench-cluster.XXXXXX)
chmod 0755 "$work" # the postgres user reaches its directory through it
api=127.0.0.1:${BENCH_CLUSTER_API_PORT:-3270} sandbox=127.0.0.1:${BENCH_CLUSTER_SANDBOX_PORT:-3271}
cluster=127.0.0.1:${BENCH_CLUSTER_PORT:-3272} agent=127.0.0.1:${BENCH_CLUSTER_AGENT_PORT:-3273}
rm -f "$out/cluster.json"
server_pid= pg_pid=

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  wait_for "$server_pid" 60 || kill -KILL "$server_pid" 2>/dev/null || true
  server_pid=
}
cleanup() {
  pkill -TERM -f "lelantos node --join https://$cluster" 2>/dev/null || true
  stop_server
  if [ -n "$pg_pid" ]; then kill -TERM "$pg_pid" 2>/dev/null || true; wait_for "$pg_pid" 30 || true; fi
  cat "$work"/*.log >"$out/cluster-servers.log" 2>/dev/null || true
  unmount_under "$work"
  rm -rf "$work"
}
trap cleanup EXIT

# start_server NAME FLAGS...: a server on data directory NAME, with FLAGS added.
start_server() {
  local data=$work/$1
  shift
  "$repo/bin/lelantos" serve --data-dir "$data" --listen "$api" --sandbox-listen "$sandbox" \
    --subnet 10.249.0.0/16 --net-prefix lbc --base-rootfs "$LELANTOS_BASE_ROOTFS" --builtin-templates none \
    --runsc "$LELANTOS_CACHE_DIR/bin/runsc" --envd "$repo/bin/envd" --metrics-listen "" "$@" >>"$data.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    [ -s "$data/client.env" ] && break
    kill -0 "$server_pid" 2>/dev/null || { tail -30 "$data.log" >&2; return 1; }
    sleep 0.1
  done
  set -a; . "$data/client.env"; set +a
}

log "cluster: creates on SQLite"
start_server sqlite
(cd "$here" && node cluster.mjs store sqlite "$out/cluster.json")
stop_server

log "cluster: PostgreSQL"
start_postgres "$work/pg" "$work/postgres.log"
"$repo/bin/lelantos" certs init "$work/tls" --hosts 127.0.0.1 >/dev/null

log "cluster: creates on PostgreSQL"
start_server postgres --store "$pg_url" \
  --cluster-listen "$cluster" --cluster-tls-dir "$work/tls"
(cd "$here" && node cluster.mjs store postgres "$out/cluster.json")

log "cluster: a second node: creates per second, resumes on another node"
BENCH_NODE_CMD=$(printf '["%s","node","--join","https://%s","--tls-dir","%s","--listen","%s","--data-dir","%s","--subnet","10.250.0.0/16","--net-prefix","lbn","--base-rootfs","%s","--runsc","%s","--envd","%s","--metrics-listen",""]' \
  "$repo/bin/lelantos" "$cluster" "$work/tls" "$agent" "$work/node" "$LELANTOS_BASE_ROOTFS" "$LELANTOS_CACHE_DIR/bin/runsc" "$repo/bin/envd")
export BENCH_NODE_CMD
(cd "$here" && node cluster.mjs nodes "$out/cluster.json")
