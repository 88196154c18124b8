#!/usr/bin/env bash
# Runs features.mjs (the code interpreter, sandbox features and template builds
# through the npm clients) against a Lelantos server started as tests/e2e/server.sh
# starts one, on its own ports, subnet and name prefix: first for the code
# interpreter, then restarted with the e2e egress suite's "remote" test network
# (features.net.mjs) as its DNS upstream for the rest.
#   features.sh OUT_DIR     writes OUT_DIR/features.json and OUT_DIR/features-server.log
# It runs in the host's network namespace, as tests/e2e/run.sh does and unlike
# envd.sh: the server builds the code interpreter's template, whose apt step needs
# the Debian mirror. Its own ports, subnet and name prefix keep it apart from other
# servers; the server removes its veths and firewall chains when it stops, and
# features.net.mjs its test network.
# Expects bin/ built, tests/bench/node_modules installed, and LELANTOS_BASE_ROOTFS
# and LELANTOS_CACHE_DIR set. BENCH_FEATURES picks the parts (features.mjs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/scripts/lib.sh"
out=$(cd "$1" && pwd)
data=$(mktemp -d /tmp/lelantos-bench-features.XXXXXX)
api=127.0.0.1:${BENCH_FEATURES_API_PORT:-3250}
sandbox=127.0.0.1:${BENCH_FEATURES_SANDBOX_PORT:-3251}
subnet=${BENCH_FEATURES_SUBNET:-10.246.0.0/16}
parts=${BENCH_FEATURES:-interp,sandbox,templates}
server_pid=
net_pid=

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
  if [ -n "$net_pid" ]; then
    kill -TERM "$net_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$net_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  unmount_under "$data"
  cp "$data/server.log" "$out/features-server.log" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

# start_server FLAGS...: a server on the data directory, with FLAGS added.
start_server() {
  rm -f "$data/client.env"
  "$repo/bin/lelantos" serve --data-dir "$data" --listen "$api" --sandbox-listen "$sandbox" \
    --subnet "$subnet" --net-prefix "${BENCH_FEATURES_NET_PREFIX:-lbf}" --base-rootfs "$LELANTOS_BASE_ROOTFS" \
    --runsc "$LELANTOS_CACHE_DIR/bin/runsc" --envd "$repo/bin/envd" --interpreter "$repo/bin/interpreter" \
    "$@" >>"$data/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    if [ -s "$data/client.env" ]; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "server exited; its log:" >&2; tail -50 "$data/server.log" >&2; exit 1
    fi
    sleep 0.1
  done
  if [ ! -s "$data/client.env" ]; then echo "server not ready after 60s" >&2; exit 1; fi
  set -a; . "$data/client.env"; set +a
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$server_pid" 2>/dev/null || true
  server_pid=
}

# measure PARTS OUT_FILE: features.mjs for those parts.
measure() {
  BENCH_FEATURES="$1" BENCH_FEATURE_NET="$data/net.json" BENCH_FEATURES_DATA_DIR="$data" \
    node "$here/features.mjs" >"$2"
}

# The code interpreter with the host's resolver: its template's build fetches
# packages by name, which the test network's DNS server does not know.
results=
case ",$parts," in
  *,interp,*)
    start_server --builtin-templates code-interpreter-v1
    measure interp "$data/interp.json"
    results="$data/interp.json"
    stop_server
    ;;
esac
rest=$(echo ",$parts," | sed 's/,interp,/,/g; s/^,//; s/,$//')
if [ -n "$rest" ]; then
  # The rest with the test network's DNS server, as the e2e egress suite runs:
  # the egress proxy resolves the names of its rules with it.
  node "$here/features.net.mjs" "$(echo "$subnet" | cut -d. -f2)" "$data/net.json" &
  net_pid=$!
  for _ in $(seq 1 300); do
    if [ -s "$data/net.json" ]; then break; fi
    if ! kill -0 "$net_pid" 2>/dev/null; then echo "the test network did not start" >&2; exit 1; fi
    sleep 0.1
  done
  if [ ! -s "$data/net.json" ]; then echo "the test network not ready after 30s" >&2; exit 1; fi
  dns=$(grep -o '"dns":"[^"]*"' "$data/net.json" | cut -d'"' -f4)
  start_server --builtin-templates none --dns-upstream "$dns"
  measure "$rest" "$data/rest.json"
  results="$results $data/rest.json"
fi
# One object: each part's figures, the parts run and how long each took.
node -e '
const fs = require("node:fs")
const out = { parts: [], tookS: {} }
for (const f of process.argv.slice(1)) {
  const d = JSON.parse(fs.readFileSync(f, "utf8"))
  out.parts.push(...d.parts)
  Object.assign(out.tookS, d.tookS)
  for (const [k, v] of Object.entries(d)) if (k !== "parts" && k !== "tookS") out[k] = v
}
console.log(JSON.stringify(out, null, 1))' $results >"$out/features.json.tmp"
mv "$out/features.json.tmp" "$out/features.json"
