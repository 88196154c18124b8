# Shared settings for Lelantos' scripts. Sourced, never run.
# LELANTOS_CACHE_DIR holds everything built once and reused across clones and runs:
# the pinned runsc, the base root filesystem, the npm test client.
: "${LELANTOS_CACHE_DIR:=/var/cache/lelantos}"
RUNSC_VERSION=v0.0.0-20260905035102-160fafc42237
E2B_NPM_VERSIONS="2.51.0 2.50.0"
export LELANTOS_CACHE_DIR RUNSC_VERSION
log() { printf '[lelantos] %s\n' "$*" >&2; }
