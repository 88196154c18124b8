-- 0004: volumes, as the SQLite one. A volume belongs to a team, which names it
-- uniquely, and has a size; the key signs the tokens of its content API. A
-- sandbox's mounts are rows of sandbox_volume_mounts in order, going with the
-- sandbox; a volume cannot go while a row of a sandbox that has not ended
-- names it.

CREATE TABLE volumes (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY, -- a UUID
    team_id    TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    name       TEXT COLLATE "C" NOT NULL,             -- ^[a-zA-Z0-9_-]+$
    size_mb    BIGINT NOT NULL,
    token_key  TEXT COLLATE "C" NOT NULL,             -- hex, secret
    created_at BIGINT NOT NULL,
    UNIQUE (team_id, name)
);

CREATE TABLE sandbox_volume_mounts (
    sandbox_id TEXT COLLATE "C" NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    position   BIGINT NOT NULL,
    volume_id  TEXT COLLATE "C" NOT NULL REFERENCES volumes (id),
    path       TEXT   NOT NULL,
    PRIMARY KEY (sandbox_id, position)
);
CREATE INDEX sandbox_volume_mounts_volume ON sandbox_volume_mounts (volume_id);
