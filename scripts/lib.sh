# Shared settings for Lelantos' scripts. Sourced, never run.
# LELANTOS_CACHE_DIR holds everything built once and reused across clones and runs:
# the pinned runsc, the base root filesystem, the npm clients.
: "${LELANTOS_CACHE_DIR:=/var/cache/lelantos}"
RUNSC_VERSION=v0.0.0-20260905035102-160fafc42237
E2B_NPM_VERSIONS="2.51.0 2.50.0"
export LELANTOS_CACHE_DIR RUNSC_VERSION
log() { printf '[lelantos] %s\n' "$*" >&2; }

# with_progress WHAT SECONDS CMD...: runs CMD, and every 30 s while it runs says how
# long WHAT has taken against the SECONDS it usually takes.
with_progress() {
  local what=$1 expect=$2 start pid rc
  shift 2
  start=$(date +%s)
  "$@" &
  pid=$!
  while ! wait_for "$pid" 30; do
    log "  still $what: $(($(date +%s) - start)) s so far (usually about $expect s)"
  done
  wait "$pid" && rc=0 || rc=$?
  return "$rc"
}

# wait_for PID SECONDS: true once PID has ended, false if it still runs after SECONDS.
wait_for() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  ! kill -0 "$1" 2>/dev/null
}

# npm_ci_once WHAT: in the current directory, runs `npm ci` unless node_modules was
# installed from this very package-lock.json (its hash is kept in node_modules).
npm_ci_once() {
  local want have
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  have=$(cat node_modules/.lelantos-lock 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    log "installing $1"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > node_modules/.lelantos-lock
  fi
}

# unmount_under DIR: detaches every mount at or under DIR (runsc's namespace mount
# may be stacked, one per sandbox started at once on a fresh data directory), so
# that DIR can be removed.
unmount_under() {
  local dir=$1 points _
  for _ in $(seq 1 16); do
    points=$(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo)
    [ -n "$points" ] || return 0
    for p in $points; do umount -l "$p" 2>/dev/null || true; done
  done
  echo "mounts remain under $dir" >&2
}

# debian_mirror: the Debian mirror debootstrap takes: $DEBIAN_MIRROR, else the one
# apt uses here (empty: debootstrap's default).
debian_mirror() {
  local mirror="${DEBIAN_MIRROR:-}"
  [ -n "$mirror" ] || mirror=$(awk '/^deb / && $3 ~ /bookworm$/ {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  if [ -z "$mirror" ]; then # deb822 sources, as on Debian 12 images
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  fi
  echo "$mirror"
}

# start_postgres DIR LOG: starts a PostgreSQL server (Debian's newest) on the cluster in
# DIR, made on first use and owned by the postgres user (who must be able to reach
# DIR), listening only on its unix socket in DIR and logging to LOG, with a database
# "lelantos"; sets pg_pid to the server's process and pg_url to the database's URL.
start_postgres() {
  local dir=$1 logf=$2 bin i
  bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
  install -d -m 0700 -o postgres -g postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    (cd "$dir" && runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null)
  fi
  (cd "$dir" && exec runuser -u postgres -- "$bin/postgres" -D "$dir/data" -k "$dir" -c listen_addresses= \
    -c max_connections=200 >>"$logf" 2>&1) &
  pg_pid=$!
  for ((i = 0; i < 600; i++)); do
    runuser -u postgres -- "$bin/pg_isready" -q -h "$dir" && break
    sleep 0.1
  done
  (cd "$dir" && runuser -u postgres -- psql -h "$dir" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'lelantos'") | grep -q 1 ||
    (cd "$dir" && runuser -u postgres -- psql -h "$dir" -U postgres -qc "CREATE DATABASE lelantos")
  pg_url="postgres://postgres@/lelantos?host=$dir&sslmode=disable"
}
