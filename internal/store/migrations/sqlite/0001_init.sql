-- 0001: initial schema. Times are UTC Unix nanoseconds (0 = unset).

CREATE TABLE sandboxes (
    id                    TEXT    NOT NULL PRIMARY KEY,
    template_id           TEXT    NOT NULL,
    alias                 TEXT    NOT NULL,
    client_id             TEXT    NOT NULL,
    runtime_class         TEXT    NOT NULL,
    workload_type         TEXT    NOT NULL,
    state                 TEXT    NOT NULL,
    cpu_count             INTEGER NOT NULL,
    memory_mb             INTEGER NOT NULL,
    disk_size_mb          INTEGER NOT NULL,
    metadata              TEXT    NOT NULL, -- JSON object or 'null'; sandbox_metadata indexes it
    env_vars              TEXT    NOT NULL, -- JSON object or 'null'
    envd_version          TEXT    NOT NULL,
    envd_access_token     TEXT    NOT NULL,
    traffic_access_token  TEXT    NOT NULL,
    allow_internet_access INTEGER,          -- NULL = not set
    network               TEXT,             -- JSON as sent, NULL = not set
    auto_pause            INTEGER NOT NULL,
    auto_resume           INTEGER NOT NULL,
    started_at            INTEGER NOT NULL,
    end_at                INTEGER NOT NULL,
    node_id               TEXT    NOT NULL,
    address               TEXT    NOT NULL,
    end_reason            TEXT    NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    version               INTEGER NOT NULL
) STRICT;

-- Listing pages by (started_at, id), optionally narrowed by state or template.
CREATE INDEX sandboxes_started ON sandboxes (started_at, id);
CREATE INDEX sandboxes_state_started ON sandboxes (state, started_at, id);
CREATE INDEX sandboxes_template_started ON sandboxes (template_id, started_at, id);
-- ListDue: running sandboxes whose end_at has passed.
CREATE INDEX sandboxes_state_end ON sandboxes (state, end_at);

-- One row per metadata pair, so that metadata filters are plain indexed joins.
-- started_at copies sandboxes.started_at (the store rewrites these rows on
-- every sandbox update), so that one pair's index yields the matching
-- sandboxes already in list order.
CREATE TABLE sandbox_metadata (
    sandbox_id TEXT    NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    PRIMARY KEY (sandbox_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX sandbox_metadata_pair ON sandbox_metadata (key, value, started_at, sandbox_id);

CREATE TABLE sandbox_metrics (
    sandbox_id   TEXT    NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    ts           INTEGER NOT NULL,
    cpu_count    INTEGER NOT NULL,
    cpu_used_pct REAL    NOT NULL,
    mem_used     INTEGER NOT NULL,
    mem_total    INTEGER NOT NULL,
    mem_cache    INTEGER NOT NULL,
    disk_used    INTEGER NOT NULL,
    disk_total   INTEGER NOT NULL
) STRICT;
CREATE INDEX sandbox_metrics_sandbox_ts ON sandbox_metrics (sandbox_id, ts);
CREATE INDEX sandbox_metrics_ts ON sandbox_metrics (ts);

CREATE TABLE sandbox_events (
    sandbox_id TEXT    NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    ts         INTEGER NOT NULL,
    line       TEXT    NOT NULL
) STRICT;
CREATE INDEX sandbox_events_sandbox_ts ON sandbox_events (sandbox_id, ts);

CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE, -- hex sha256 of the key
    prefix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,                 -- NULL = never used
    revoked_at   INTEGER                  -- NULL = active
) STRICT;

CREATE TABLE templates (
    id           TEXT    NOT NULL PRIMARY KEY,
    build_id     TEXT    NOT NULL,
    rootfs_path  TEXT    NOT NULL,
    cpu_count    INTEGER NOT NULL,
    memory_mb    INTEGER NOT NULL,
    disk_size_mb INTEGER NOT NULL,
    start_cmd    TEXT    NOT NULL,
    ready_cmd    TEXT    NOT NULL,
    envd_version TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    public       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE template_aliases (
    alias       TEXT NOT NULL PRIMARY KEY,
    template_id TEXT NOT NULL REFERENCES templates (id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX template_aliases_template ON template_aliases (template_id);
