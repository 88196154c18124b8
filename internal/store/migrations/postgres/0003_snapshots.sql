-- 0003: snapshots, and the lifecycle settings of sandboxes beside their row,
-- as the SQLite one.
--
-- A snapshot is a template of its team whose builds are checkpoints of
-- sandboxes (memory, processes and files), each kept as an image on a node: a
-- sandbox created from the template starts from its newest build of a tag.
-- Removing the template removes its builds.
CREATE TABLE snapshots (
    id               TEXT COLLATE "C" NOT NULL PRIMARY KEY, -- the image's name on its node
    template_id      TEXT COLLATE "C" NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    team_id          TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    tag              TEXT COLLATE "C" NOT NULL,
    sandbox_id       TEXT COLLATE "C" NOT NULL, -- taken of; not a reference: it may be gone
    base_template_id TEXT COLLATE "C" NOT NULL, -- the template of that sandbox
    node_id          TEXT COLLATE "C" NOT NULL,
    runtime_class    TEXT COLLATE "C" NOT NULL,
    size_bytes       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX snapshots_team_created ON snapshots (team_id, created_at, id);
CREATE INDEX snapshots_team_sandbox ON snapshots (team_id, sandbox_id, created_at, id);
CREATE INDEX snapshots_template ON snapshots (template_id, tag, created_at, id);

-- What happens to a sandbox at its end time and on traffic while paused,
-- beyond sandboxes.auto_pause and auto_resume. A sandbox without a row has the
-- defaults: pauses keep the memory, the server's default timeout.
CREATE TABLE sandbox_lifecycle (
    sandbox_id        TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES sandboxes (id) ON DELETE CASCADE,
    auto_pause_memory BOOLEAN NOT NULL, -- a pause at the end time keeps the memory
    timeout           BIGINT  NOT NULL, -- nanoseconds: the lifetime asked at create (0 = default)
    paused_memory     BOOLEAN NOT NULL  -- the last pause kept the memory
);
