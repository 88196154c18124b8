-- 0002: teams. Every API key, sandbox, template and template build belongs to
-- a team; what existed before goes to the team "default". Tables that gain a
-- NOT NULL reference to teams are rebuilt (SQLite cannot add such a column),
-- children before parents are dropped so that no ON DELETE CASCADE fires, and
-- every row is copied.

CREATE TABLE teams (
    id            TEXT    NOT NULL PRIMARY KEY,
    slug          TEXT    NOT NULL UNIQUE, -- ^[a-z0-9_-]+$, used in names
    name          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    -- Quotas: NULL = the server's default, 0 = unlimited.
    max_sandboxes INTEGER,
    max_vcpu      INTEGER,
    max_memory_mb INTEGER,
    max_builds    INTEGER
) STRICT;

INSERT INTO teams (id, slug, name, created_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'default', 'default', unixepoch('now') * 1000000000);

-- API keys: the owning team, and the key's last four digits for its mask
-- ('' for keys made before, whose digits were never kept).
CREATE TABLE api_keys_new (
    id           TEXT    NOT NULL PRIMARY KEY,
    team_id      TEXT    NOT NULL REFERENCES teams (id),
    name         TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE, -- hex sha256 of the key
    prefix       TEXT    NOT NULL,
    suffix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,                 -- NULL = never used
    revoked_at   INTEGER                  -- NULL = active
) STRICT;
INSERT INTO api_keys_new (id, team_id, name, hash, prefix, suffix, created_at, last_used_at, revoked_at)
SELECT id, '00000000-0000-0000-0000-000000000000', name, hash, prefix, '', created_at, last_used_at, revoked_at
FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;
CREATE INDEX api_keys_team ON api_keys (team_id, created_at, id);

-- Sandboxes and their side tables.
CREATE TABLE sandboxes_new (
    id                    TEXT    NOT NULL PRIMARY KEY,
    team_id               TEXT    NOT NULL REFERENCES teams (id),
    template_id           TEXT    NOT NULL,
    alias                 TEXT    NOT NULL,
    client_id             TEXT    NOT NULL,
    runtime_class         TEXT    NOT NULL,
    workload_type         TEXT    NOT NULL,
    state                 TEXT    NOT NULL,
    cpu_count             INTEGER NOT NULL,
    memory_mb             INTEGER NOT NULL,
    disk_size_mb          INTEGER NOT NULL,
    metadata              TEXT    NOT NULL,
    env_vars              TEXT    NOT NULL,
    envd_version          TEXT    NOT NULL,
    envd_access_token     TEXT    NOT NULL,
    traffic_access_token  TEXT    NOT NULL,
    allow_internet_access INTEGER,
    network               TEXT,
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
INSERT INTO sandboxes_new (id, team_id, template_id, alias, client_id, runtime_class, workload_type,
    state, cpu_count, memory_mb, disk_size_mb, metadata, env_vars, envd_version, envd_access_token,
    traffic_access_token, allow_internet_access, network, auto_pause, auto_resume, started_at, end_at,
    node_id, address, end_reason, created_at, updated_at, version)
SELECT id, '00000000-0000-0000-0000-000000000000', template_id, alias, client_id, runtime_class,
    workload_type, state, cpu_count, memory_mb, disk_size_mb, metadata, env_vars, envd_version,
    envd_access_token, traffic_access_token, allow_internet_access, network, auto_pause, auto_resume,
    started_at, end_at, node_id, address, end_reason, created_at, updated_at, version
FROM sandboxes;

-- team_id and started_at copy the sandbox's, so that one pair's index yields
-- one team's matching sandboxes already in list order.
CREATE TABLE sandbox_metadata_new (
    sandbox_id TEXT    NOT NULL REFERENCES sandboxes_new (id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    team_id    TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    PRIMARY KEY (sandbox_id, key)
) STRICT, WITHOUT ROWID;
INSERT INTO sandbox_metadata_new (sandbox_id, key, value, team_id, started_at)
SELECT sandbox_id, key, value, '00000000-0000-0000-0000-000000000000', started_at FROM sandbox_metadata;

CREATE TABLE sandbox_metrics_new (
    sandbox_id   TEXT    NOT NULL REFERENCES sandboxes_new (id) ON DELETE CASCADE,
    ts           INTEGER NOT NULL,
    cpu_count    INTEGER NOT NULL,
    cpu_used_pct REAL    NOT NULL,
    mem_used     INTEGER NOT NULL,
    mem_total    INTEGER NOT NULL,
    mem_cache    INTEGER NOT NULL,
    disk_used    INTEGER NOT NULL,
    disk_total   INTEGER NOT NULL
) STRICT;
INSERT INTO sandbox_metrics_new (rowid, sandbox_id, ts, cpu_count, cpu_used_pct, mem_used, mem_total,
    mem_cache, disk_used, disk_total)
SELECT rowid, sandbox_id, ts, cpu_count, cpu_used_pct, mem_used, mem_total, mem_cache, disk_used, disk_total
FROM sandbox_metrics;

CREATE TABLE sandbox_events_new (
    sandbox_id TEXT    NOT NULL REFERENCES sandboxes_new (id) ON DELETE CASCADE,
    ts         INTEGER NOT NULL,
    line       TEXT    NOT NULL
) STRICT;
-- rowid keeps the order of events with equal times.
INSERT INTO sandbox_events_new (rowid, sandbox_id, ts, line)
SELECT rowid, sandbox_id, ts, line FROM sandbox_events;

DROP TABLE sandbox_metadata;
DROP TABLE sandbox_metrics;
DROP TABLE sandbox_events;
DROP TABLE sandboxes;
-- Renaming a table also renames the references to it in the new side tables.
ALTER TABLE sandboxes_new RENAME TO sandboxes;
ALTER TABLE sandbox_metadata_new RENAME TO sandbox_metadata;
ALTER TABLE sandbox_metrics_new RENAME TO sandbox_metrics;
ALTER TABLE sandbox_events_new RENAME TO sandbox_events;

-- Listing pages by (started_at, id), optionally narrowed by team, state or
-- template; the unscoped forms serve the control plane's own passes.
CREATE INDEX sandboxes_started ON sandboxes (started_at, id);
CREATE INDEX sandboxes_state_started ON sandboxes (state, started_at, id);
CREATE INDEX sandboxes_template_started ON sandboxes (template_id, started_at, id);
CREATE INDEX sandboxes_team_started ON sandboxes (team_id, started_at, id);
CREATE INDEX sandboxes_team_state_started ON sandboxes (team_id, state, started_at, id);
CREATE INDEX sandboxes_team_template_started ON sandboxes (team_id, template_id, started_at, id);
-- ListDue: running sandboxes whose end_at has passed.
CREATE INDEX sandboxes_state_end ON sandboxes (state, end_at);
CREATE INDEX sandbox_metadata_pair ON sandbox_metadata (key, value, started_at, sandbox_id);
CREATE INDEX sandbox_metadata_team_pair ON sandbox_metadata (team_id, key, value, started_at, sandbox_id);
CREATE INDEX sandbox_metrics_sandbox_ts ON sandbox_metrics (sandbox_id, ts);
CREATE INDEX sandbox_metrics_ts ON sandbox_metrics (ts);
CREATE INDEX sandbox_events_sandbox_ts ON sandbox_events (sandbox_id, ts);

-- Templates: the owning team and the team's name for the template (templates
-- made before keep their ID as their name). Names and aliases are unique
-- within a team; IDs across all teams.
CREATE TABLE templates_new (
    id           TEXT    NOT NULL PRIMARY KEY,
    team_id      TEXT    NOT NULL REFERENCES teams (id),
    name         TEXT    NOT NULL,
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
    updated_at   INTEGER NOT NULL,
    UNIQUE (team_id, name)
) STRICT;
INSERT INTO templates_new (id, team_id, name, build_id, rootfs_path, cpu_count, memory_mb, disk_size_mb,
    start_cmd, ready_cmd, envd_version, status, public, created_at, updated_at)
SELECT id, '00000000-0000-0000-0000-000000000000', id, build_id, rootfs_path, cpu_count, memory_mb,
    disk_size_mb, start_cmd, ready_cmd, envd_version, status, public, created_at, updated_at
FROM templates;
CREATE INDEX templates_public_name ON templates_new (public, name);

CREATE TABLE template_aliases_new (
    team_id     TEXT NOT NULL,
    alias       TEXT NOT NULL,
    template_id TEXT NOT NULL REFERENCES templates_new (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, alias)
) STRICT, WITHOUT ROWID;
INSERT INTO template_aliases_new (team_id, alias, template_id)
SELECT '00000000-0000-0000-0000-000000000000', alias, template_id FROM template_aliases;

DROP TABLE template_aliases;
DROP TABLE templates;
ALTER TABLE templates_new RENAME TO templates;
ALTER TABLE template_aliases_new RENAME TO template_aliases;
CREATE INDEX template_aliases_template ON template_aliases (template_id);
CREATE INDEX template_aliases_alias ON template_aliases (alias);

-- Template builds the control plane started: who asked, for which template,
-- and whether it still runs (the concurrent-builds quota counts those). The
-- template row appears only when a build succeeds, so no reference to it.
CREATE TABLE template_builds (
    id          TEXT    NOT NULL PRIMARY KEY,
    team_id     TEXT    NOT NULL REFERENCES teams (id),
    template_id TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER                   -- NULL while it runs
) STRICT;
CREATE INDEX template_builds_team_status ON template_builds (team_id, status);
CREATE INDEX template_builds_status ON template_builds (status, started_at);
