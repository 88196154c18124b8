-- 0001: initial schema, as the SQLite one. Times are UTC Unix nanoseconds
-- (0 = unset). Text compares byte by byte (COLLATE "C"), as in SQLite,
-- whatever the database's locale: listings and cursors order IDs and names
-- the same way on both.

CREATE TABLE sandboxes (
    id                    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    template_id           TEXT COLLATE "C" NOT NULL,
    alias                 TEXT COLLATE "C" NOT NULL,
    client_id             TEXT COLLATE "C" NOT NULL,
    runtime_class         TEXT COLLATE "C" NOT NULL,
    workload_type         TEXT COLLATE "C" NOT NULL,
    state                 TEXT COLLATE "C" NOT NULL,
    cpu_count             BIGINT  NOT NULL,
    memory_mb             BIGINT  NOT NULL,
    disk_size_mb          BIGINT  NOT NULL,
    metadata              TEXT    NOT NULL, -- JSON object or 'null'; sandbox_metadata indexes it
    env_vars              TEXT    NOT NULL, -- JSON object or 'null'
    envd_version          TEXT COLLATE "C" NOT NULL,
    envd_access_token     TEXT COLLATE "C" NOT NULL,
    traffic_access_token  TEXT COLLATE "C" NOT NULL,
    allow_internet_access BOOLEAN,          -- NULL = not set
    network               TEXT,             -- JSON as sent, NULL = not set
    auto_pause            BOOLEAN NOT NULL,
    auto_resume           BOOLEAN NOT NULL,
    started_at            BIGINT  NOT NULL,
    end_at                BIGINT  NOT NULL,
    node_id               TEXT COLLATE "C" NOT NULL,
    address               TEXT COLLATE "C" NOT NULL,
    end_reason            TEXT    NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL,
    version               BIGINT  NOT NULL
);

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
    sandbox_id TEXT COLLATE "C" NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT COLLATE "C" NOT NULL,
    started_at BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, key)
);
CREATE INDEX sandbox_metadata_pair ON sandbox_metadata (key, value, started_at, sandbox_id);

-- seq orders samples and events of equal times as they were added (SQLite's
-- rowid does that there).
CREATE TABLE sandbox_metrics (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY,
    sandbox_id   TEXT COLLATE "C" NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    ts           BIGINT           NOT NULL,
    cpu_count    BIGINT           NOT NULL,
    cpu_used_pct DOUBLE PRECISION NOT NULL,
    mem_used     BIGINT           NOT NULL,
    mem_total    BIGINT           NOT NULL,
    mem_cache    BIGINT           NOT NULL,
    disk_used    BIGINT           NOT NULL,
    disk_total   BIGINT           NOT NULL
);
CREATE INDEX sandbox_metrics_sandbox_ts ON sandbox_metrics (sandbox_id, ts);
CREATE INDEX sandbox_metrics_ts ON sandbox_metrics (ts);

CREATE TABLE sandbox_events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    sandbox_id TEXT COLLATE "C" NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    ts         BIGINT NOT NULL,
    line       TEXT   NOT NULL
);
CREATE INDEX sandbox_events_sandbox_ts ON sandbox_events (sandbox_id, ts);

CREATE TABLE api_keys (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name         TEXT COLLATE "C" NOT NULL,
    hash         TEXT COLLATE "C" NOT NULL UNIQUE, -- hex sha256 of the key
    prefix       TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,                           -- NULL = never used
    revoked_at   BIGINT                            -- NULL = active
);

CREATE TABLE templates (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    build_id     TEXT COLLATE "C" NOT NULL,
    rootfs_path  TEXT    NOT NULL,
    cpu_count    BIGINT  NOT NULL,
    memory_mb    BIGINT  NOT NULL,
    disk_size_mb BIGINT  NOT NULL,
    start_cmd    TEXT    NOT NULL,
    ready_cmd    TEXT    NOT NULL,
    envd_version TEXT COLLATE "C" NOT NULL,
    status       TEXT COLLATE "C" NOT NULL,
    public       BOOLEAN NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);

CREATE TABLE template_aliases (
    alias       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    template_id TEXT COLLATE "C" NOT NULL REFERENCES templates (id) ON DELETE CASCADE
);
CREATE INDEX template_aliases_template ON template_aliases (template_id);
