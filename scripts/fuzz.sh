#!/usr/bin/env bash
# `make fuzz`: runs every Go fuzz target of the module for $FUZZTIME each (default
# 60s). `make test` already runs each target's seed corpus (testdata/fuzz and
# f.Add seeds) as plain tests; this searches for new inputs. A crasher is written to
# the package's testdata/fuzz/<target>/ and fails the run: commit it with the fix so
# that it stays in the seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
: "${FUZZTIME:=60s}"
status=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  grep -lq '^func Fuzz' "$dir"/*_test.go 2>/dev/null || continue
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    log "fuzzing $pkg $target for $FUZZTIME"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 10s "$pkg" || status=1
  done
done
exit "$status"
