#!/usr/bin/env bash
# `make bench`: measures Lelantos on this machine and prints one markdown report;
# docs/benchmarks.md records a run. Sets up as scripts/test.sh does (host packages,
# the pinned runsc, the build, the base template), then runs, each figure beside a
# baseline measured in the same run:
#   - the packages' own benchmarks (store, api, proxy, network);
#   - tests/bench: real engines running gVisor sandboxes (create to first command,
#     pause and resume with 200 MiB resident, fork, idle memory) against runsc and
#     runc started by hand on the same root filesystem;
#   - tests/bench/envd.mjs: the npm e2b client against a server started as the e2e
#     suites start one (commands, transfers, envd's memory, API creates; and, in
#     client.mjs, create to first command one by one and in bursts, commands and
#     small files beside their floors, pause and resume), inside a private network
#     namespace;
#   - tests/bench/features.mjs: the npm e2b and @e2b/code-interpreter clients against
#     a server of its own (code interpreter, fork, snapshots, auto-resume, egress
#     rules, template builds), in the host's network namespace, since the server
#     builds the code interpreter's template from the Debian mirror;
#   - tests/bench/cluster.mjs: the npm e2b client against a server on SQLite and
#     on PostgreSQL, and with a second node (creates per second with one node and
#     two, a resume on another node beside one on the sandbox's own).
# Everything lands in $BENCH_OUT_DIR (default .lelantos/bench/<UTC time>), the report
# in bench-results.md there. Counts come from the environment [defaults]:
#   BENCH_CREATE_N [30]  BENCH_BASELINE_N [30]  BENCH_PAUSE_CYCLES [5]  BENCH_FORKS [10]
#   BENCH_FORK_ROUNDS [2]  BENCH_IDLE_N [20]  BENCH_IDLE_RUNC_N [5]  BENCH_SETTLE_S [10]
#   BENCH_CMD_N [200]  BENCH_TRANSFER_MB [512]  BENCH_TRANSFER_RUNS [3]
#   BENCH_API_CREATE_N [20]  BENCH_PKG_N [100]  BENCH_PROXY_N [10]  BENCH_NET_N [20]
#   BENCH_CLIENT_CREATE_N [20]  BENCH_BURST_SIZE [10]  BENCH_BURST_ROUNDS [3]
#   BENCH_SMALL_N [200]  BENCH_CLIENT_PAUSE_N [3]
#   features.mjs: BENCH_FEATURES [interp,sandbox,templates]  BENCH_INTERP_WAIT_S [1800]
#   BENCH_INTERP_CREATE_N [10]  BENCH_INTERP_GAP_MS [1500]  BENCH_INTERP_RUN_N [100]  BENCH_INTERP_IDLE_N [3]
#   BENCH_FEATURE_FORK_ROUNDS [3]  BENCH_SNAPSHOT_N [5]  BENCH_RESUME_N [5]
#   BENCH_EGRESS_MB [1024]  BENCH_EGRESS_RUNS [3]  BENCH_TEMPLATE_ROUNDS [1]
#   cluster.mjs: BENCH_CLUSTER_CREATE_N [20]  BENCH_CLUSTER_SECONDS [20]  BENCH_CLUSTER_WORKERS [4]
#   BENCH_CLUSTER_RESUME_N [3]
#   (about 4 minutes with these, plus the code interpreter template's build when it
#   is not cached: about 6 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ "$(id -u)" != 0 ]; then
  echo "lelantos: the benchmarks need root: sandboxes use namespaces, cgroups and iptables" >&2
  exit 1
fi
started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
bash scripts/install-deps.sh
bash scripts/install-runsc.sh
bash scripts/build.sh
LELANTOS_BASE_ROOTFS=$(bash scripts/build-base.sh)
export LELANTOS_BASE_ROOTFS

: "${BENCH_CREATE_N:=30}" "${BENCH_BASELINE_N:=30}" "${BENCH_PAUSE_CYCLES:=5}" "${BENCH_FORKS:=10}"
: "${BENCH_FORK_ROUNDS:=2}" "${BENCH_IDLE_N:=20}" "${BENCH_IDLE_RUNC_N:=5}" "${BENCH_SETTLE_S:=10}"
: "${BENCH_CMD_N:=200}" "${BENCH_TRANSFER_MB:=512}" "${BENCH_TRANSFER_RUNS:=3}"
: "${BENCH_API_CREATE_N:=20}" "${BENCH_PKG_N:=100}" "${BENCH_PROXY_N:=10}" "${BENCH_NET_N:=20}"
: "${BENCH_FEATURES:=interp,sandbox,templates}" "${BENCH_INTERP_WAIT_S:=1800}" "${BENCH_INTERP_CREATE_N:=10}" "${BENCH_INTERP_GAP_MS:=1500}"
: "${BENCH_INTERP_RUN_N:=100}" "${BENCH_INTERP_IDLE_N:=3}" "${BENCH_FEATURE_FORK_ROUNDS:=3}" "${BENCH_SNAPSHOT_N:=5}"
: "${BENCH_RESUME_N:=5}" "${BENCH_EGRESS_MB:=1024}" "${BENCH_EGRESS_RUNS:=3}" "${BENCH_TEMPLATE_ROUNDS:=1}"
: "${BENCH_CLIENT_CREATE_N:=20}" "${BENCH_BURST_SIZE:=10}" "${BENCH_BURST_ROUNDS:=3}" "${BENCH_SMALL_N:=200}"
: "${BENCH_CLIENT_PAUSE_N:=3}"
: "${BENCH_CLUSTER_CREATE_N:=20}" "${BENCH_CLUSTER_SECONDS:=20}" "${BENCH_CLUSTER_WORKERS:=4}" "${BENCH_CLUSTER_RESUME_N:=3}"
vars="BENCH_CREATE_N BENCH_BASELINE_N BENCH_PAUSE_CYCLES BENCH_FORKS BENCH_FORK_ROUNDS BENCH_IDLE_N
  BENCH_IDLE_RUNC_N BENCH_SETTLE_S BENCH_CMD_N BENCH_TRANSFER_MB BENCH_TRANSFER_RUNS BENCH_API_CREATE_N
  BENCH_PKG_N BENCH_PROXY_N BENCH_NET_N BENCH_FEATURES BENCH_INTERP_WAIT_S BENCH_INTERP_CREATE_N BENCH_INTERP_GAP_MS
  BENCH_INTERP_RUN_N BENCH_INTERP_IDLE_N BENCH_FEATURE_FORK_ROUNDS BENCH_SNAPSHOT_N BENCH_RESUME_N
  BENCH_EGRESS_MB BENCH_EGRESS_RUNS BENCH_TEMPLATE_ROUNDS
  BENCH_CLIENT_CREATE_N BENCH_BURST_SIZE BENCH_BURST_ROUNDS BENCH_SMALL_N BENCH_CLIENT_PAUSE_N
  BENCH_CLUSTER_CREATE_N BENCH_CLUSTER_SECONDS BENCH_CLUSTER_WORKERS BENCH_CLUSTER_RESUME_N"
settings=
for v in $vars; do
  export "${v?}"
  settings="$settings $v=${!v}"
done
out=${BENCH_OUT_DIR:-.lelantos/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out/packages.txt" "$out/engine.txt" "$out/envd.json" "$out/features.json"
status=0

log "building the benchmarks into $out"
go test -c -o "$out/bench.test" ./tests/bench
go build -o "$out/benchfs" ./tests/bench/cmd/benchfs
go build -o "$out/benchreport" ./tests/bench/cmd/benchreport
(
  cd tests/bench
  npm_ci_once "the e2b client for the benchmarks"
)

# pkg_bench PACKAGE COUNT: every benchmark of the package, COUNT iterations each.
pkg_bench() {
  log "package benchmarks: $1 (${2}x)"
  go test -p 1 -count=1 -run '^$' -bench . -benchtime "${2}x" -timeout 15m "$1" 2>&1 | tee -a "$out/packages.txt" || status=1
}
pkg_bench ./internal/store "$BENCH_PKG_N"
pkg_bench ./internal/api "$BENCH_PKG_N"
pkg_bench ./internal/proxy "$BENCH_PROXY_N"
pkg_bench ./internal/network "$BENCH_NET_N"

# engine_bench NAME COUNT: one benchmark of tests/bench, COUNT iterations.
export LELANTOS_TEST_ENVD="$PWD/bin/envd"
engine_bench() {
  log "tests/bench: $1 (${2}x)"
  (cd "$out" && ./bench.test -test.run '^$' -test.bench "^$1\$" -test.benchtime "${2}x" -test.timeout 20m) 2>&1 |
    tee -a "$out/engine.txt" || status=1
}
engine_bench BenchmarkBaselineForkExecTrue "$BENCH_CMD_N"
engine_bench BenchmarkEnvdCommandTrue "$BENCH_CMD_N"
engine_bench BenchmarkBaselineRuncTrue "$BENCH_BASELINE_N"
engine_bench BenchmarkBaselineRunscTrue "$BENCH_BASELINE_N"
engine_bench BenchmarkEngineCreateFirstCommand "$BENCH_CREATE_N"
engine_bench BenchmarkEngineCreateWarmPool "$BENCH_CREATE_N"
engine_bench BenchmarkBaselineRunscCheckpointRestore200MB "$BENCH_PAUSE_CYCLES"
engine_bench BenchmarkEnginePauseResume200MB "$BENCH_PAUSE_CYCLES"
engine_bench BenchmarkEngineFork10 "$BENCH_FORK_ROUNDS"
engine_bench BenchmarkEngineIdleDensity 1
engine_bench BenchmarkBaselineIdleDensityRunc 1

log "e2b client measurements against a server in a private network namespace"
unshare --net bash tests/bench/envd.sh "$out" || status=1

log "code interpreter, sandbox features and template builds through the npm clients"
bash tests/bench/features.sh "$out" || status=1

log "many nodes: PostgreSQL, a second node, resumes on another node, through the npm client"
bash tests/bench/cluster.sh "$out" || status=1

"$out/benchreport" -dir "$out" -command "make bench" -settings "${settings# }" \
  -runsc "$RUNSC_VERSION" -commit "$(git describe --always --dirty 2>/dev/null || echo unknown)" \
  -took "$(($(date +%s) - started))s" -load-start "$load_start" >"$out/bench-results.md"
cat "$out/bench-results.md"
log "report: $out/bench-results.md (raw output beside it); took $(($(date +%s) - started)) s"
if [ "$status" != 0 ]; then log "some benchmarks failed: see their output above"; fi
exit "$status"
