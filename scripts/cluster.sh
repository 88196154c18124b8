#!/usr/bin/env bash
# What `make cluster` does, as root: sets up as `make run` does, then starts on
# this machine the cluster Lelantos runs on many: a PostgreSQL server (Debian's),
# two control-plane replicas without nodes of their own sharing one API address
# and one sandbox proxy address (SO_REUSEPORT), and two `lelantos node`s, each
# with its own data directory, subnet and certificate of a cluster CA made here.
# Everything lives in .lelantos-cluster/ (or $LELANTOS_CLUSTER_DIR) but the
# database, which the postgres user must reach: /var/lib/lelantos/cluster/pg-HASH,
# HASH naming that directory. The clients' settings are written to
# .lelantos/client.env as `make run` writes them.
# SIGTERM or Ctrl-C stops it all; sandboxes and data stay for the next start.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
. scripts/lib.sh
if [ "$(id -u)" != 0 ]; then
  echo "lelantos: run as root: sandboxes need namespaces, cgroups and iptables" >&2
  exit 1
fi
dir=$(realpath -m "${LELANTOS_CLUSTER_DIR:-.lelantos-cluster}")
api=${LELANTOS_CLUSTER_API:-127.0.0.1:3000} proxy=${LELANTOS_CLUSTER_PROXY:-127.0.0.1:3001}
cluster=${LELANTOS_CLUSTER_ENDPOINT:-127.0.0.1:3903}
log "step 1/5: host packages"
bash scripts/install-deps.sh
log "step 2/5: the base template's root filesystem, runsc and Lelantos"
base=$(bash scripts/build-base.sh)
bash scripts/install-runsc.sh
with_progress "building lelantos" 60 bash scripts/build.sh
modules=$(bash scripts/install-client.sh)
mkdir -p "$dir"
pids=()
stop_all() {
  trap - INT TERM EXIT
  log "stopping the cluster"
  # Nodes first (their sandboxes keep running and are re-adopted), then the
  # replicas, then the database.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait_for "${pids[i]}" 60 || kill -KILL "${pids[i]}" 2>/dev/null || true
  done
  rm -f "$repo/.lelantos/client.env"
}
trap stop_all INT TERM EXIT

pg=/var/lib/lelantos/cluster/pg-$(printf %s "$dir" | sha256sum | cut -c1-12)
log "step 3/5: PostgreSQL in $pg"
install -d -m 0755 /var/lib/lelantos /var/lib/lelantos/cluster
start_postgres "$pg" "$dir/postgres.log"
pids+=("$pg_pid")
store=$pg_url

log "step 4/5: two control-plane replicas on $api"
if [ ! -f "$dir/tls/ca.pem" ]; then
  ./bin/lelantos certs init "$dir/tls" --hosts 127.0.0.1 >/dev/null
  ./bin/lelantos certs node "$dir/tls" node-b --hosts 127.0.0.1 >/dev/null
fi
for r in 1 2; do
  rm -f "$dir/replica-$r/client.env"
  ./bin/lelantos serve --no-node --store "$store" --reuse-port --listen "$api" --sandbox-listen "$proxy" \
    --cluster-listen "$cluster" --cluster-tls-dir "$dir/tls" --images-dir "$dir/images" --data-dir "$dir/replica-$r" \
    --base-rootfs "$base" --client-modules "$modules" >>"$dir/replica-$r.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 1200); do
    [ -s "$dir/replica-$r/client.env" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { tail -30 "$dir/replica-$r.log" >&2; exit 1; }
    sleep 0.1
  done
done

log "step 5/5: two nodes"
n=0
for name in node node-b; do
  n=$((n + 1))
  ./bin/lelantos node --join "https://$cluster" --tls-dir "$dir/tls" --name "$name" --listen "127.0.0.1:$((3910 + n))" \
    --data-dir "$dir/$name" --subnet "10.$((221 + n)).0.0/16" --net-prefix "lc$n" --base-rootfs "$base" \
    --runsc "$LELANTOS_CACHE_DIR/bin/runsc" --envd ./bin/envd >>"$dir/$name.log" 2>&1 &
  pids+=($!)
done
mkdir -p .lelantos
# The first start made the admin key; every later one reads it from there.
key=$(cat "$dir/replica-1/admin-key" 2>/dev/null || cat "$dir/replica-2/admin-key" 2>/dev/null || true)
sed "s|^E2B_API_KEY=.*|E2B_API_KEY=$key|" "$dir/replica-1/client.env" >.lelantos/client.env
chmod 600 .lelantos/client.env
cat <<MSG

Lelantos is ready: a cluster of two control-plane replicas and two nodes.
  API:          http://$api
  Sandbox URL:  http://$proxy
  API key:      $key
  Nodes:        ./bin/lelantos nodes   (logs in $dir)

Configure the e2b clients with:
  set -a; . $repo/.lelantos/client.env; set +a

MSG
wait -n "${pids[@]}" || true
log "a process of the cluster ended; see the logs in $dir"
