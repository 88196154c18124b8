-- 0004: volumes. A volume belongs to a team, which names it uniquely, and has a
-- size; the key signs the tokens of its content API. A sandbox's mounts are
-- rows of sandbox_volume_mounts in order, going with the sandbox; a volume
-- cannot go while a row of a sandbox that has not ended names it.

CREATE TABLE volumes (
    id         TEXT    NOT NULL PRIMARY KEY, -- a UUID
    team_id    TEXT    NOT NULL REFERENCES teams (id),
    name       TEXT    NOT NULL,             -- ^[a-zA-Z0-9_-]+$
    size_mb    INTEGER NOT NULL,
    token_key  TEXT    NOT NULL,             -- hex, secret
    created_at INTEGER NOT NULL,
    UNIQUE (team_id, name)
) STRICT;

CREATE TABLE sandbox_volume_mounts (
    sandbox_id TEXT    NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    volume_id  TEXT    NOT NULL REFERENCES volumes (id),
    path       TEXT    NOT NULL,
    PRIMARY KEY (sandbox_id, position)
) STRICT, WITHOUT ROWID;
CREATE INDEX sandbox_volume_mounts_volume ON sandbox_volume_mounts (volume_id);
