#!/usr/bin/env bash
# Starts, stops and restarts a Lelantos server for the end-to-end tests, the way
# `make run` starts it, on its own ports, subnet and data directory.
#   server.sh start|stop|restart
# Settings (exported by run.sh): E2E_DATA_DIR, E2E_API, E2E_SANDBOX, E2E_SUBNET,
# LELANTOS_BASE_ROOTFS, LELANTOS_CACHE_DIR; a suite may add serve flags in
# E2E_SERVE_FLAGS before it restarts the server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
pidfile="$E2E_DATA_DIR/server.pid"

start() {
  mkdir -p "$E2E_DATA_DIR"
  # A server that was killed leaves its client.env behind; ready means a new one.
  rm -f "$E2E_DATA_DIR/client.env"
  "$repo/bin/lelantos" serve --data-dir "$E2E_DATA_DIR" --listen "$E2E_API" --sandbox-listen "$E2E_SANDBOX" \
    --subnet "$E2E_SUBNET" --net-prefix "${E2E_NET_PREFIX:-le2e}" --base-rootfs "$LELANTOS_BASE_ROOTFS" --runsc "$LELANTOS_CACHE_DIR/bin/runsc" \
    --envd "$repo/bin/envd" --runtime-classes gvisor,runc ${E2E_SERVE_FLAGS:-} >>"$E2E_DATA_DIR/server.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 1200); do
    if [ -s "$E2E_DATA_DIR/client.env" ]; then return 0; fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "server exited; its log:" >&2; tail -50 "$E2E_DATA_DIR/server.log" >&2; return 1
    fi
    sleep 0.1
  done
  echo "server not ready after 120s" >&2; return 1
}

stop() {
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "server $pid still running 60s after SIGTERM: killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    # Its ports and files are free only once it is gone.
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: server.sh start|stop|restart" >&2; exit 2 ;;
esac
