-- 0002: teams, as the SQLite one. Every API key, sandbox, template and
-- template build belongs to a team; what existed before goes to the team
-- "default". PostgreSQL adds the columns in place (SQLite rebuilds the
-- tables); the result has the same columns, keys and indexes.

CREATE TABLE teams (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    slug          TEXT COLLATE "C" NOT NULL UNIQUE, -- ^[a-z0-9_-]+$, used in names
    name          TEXT COLLATE "C" NOT NULL,
    created_at    BIGINT NOT NULL,
    -- Quotas: NULL = the server's default, 0 = unlimited.
    max_sandboxes BIGINT,
    max_vcpu      BIGINT,
    max_memory_mb BIGINT,
    max_builds    BIGINT
);

INSERT INTO teams (id, slug, name, created_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'default', 'default',
        CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) * 1000000000);

-- API keys: the owning team, and the key's last four digits for its mask
-- ('' for keys made before, whose digits were never kept).
ALTER TABLE api_keys ADD COLUMN team_id TEXT COLLATE "C" NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000' REFERENCES teams (id);
ALTER TABLE api_keys ALTER COLUMN team_id DROP DEFAULT;
ALTER TABLE api_keys ADD COLUMN suffix TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE api_keys ALTER COLUMN suffix DROP DEFAULT;
CREATE INDEX api_keys_team ON api_keys (team_id, created_at, id);

-- Sandboxes, and their metadata rows: team_id and started_at copy the
-- sandbox's, so that one pair's index yields one team's matching sandboxes
-- already in list order.
ALTER TABLE sandboxes ADD COLUMN team_id TEXT COLLATE "C" NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000' REFERENCES teams (id);
ALTER TABLE sandboxes ALTER COLUMN team_id DROP DEFAULT;
ALTER TABLE sandbox_metadata ADD COLUMN team_id TEXT COLLATE "C" NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE sandbox_metadata ALTER COLUMN team_id DROP DEFAULT;

-- Listing pages by (started_at, id), narrowed by team, state or template.
CREATE INDEX sandboxes_team_started ON sandboxes (team_id, started_at, id);
CREATE INDEX sandboxes_team_state_started ON sandboxes (team_id, state, started_at, id);
CREATE INDEX sandboxes_team_template_started ON sandboxes (team_id, template_id, started_at, id);
CREATE INDEX sandbox_metadata_team_pair ON sandbox_metadata (team_id, key, value, started_at, sandbox_id);

-- Templates: the owning team and the team's name for the template (templates
-- made before keep their ID as their name). Names and aliases are unique
-- within a team; IDs across all teams.
ALTER TABLE templates ADD COLUMN team_id TEXT COLLATE "C" NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000' REFERENCES teams (id);
ALTER TABLE templates ALTER COLUMN team_id DROP DEFAULT;
ALTER TABLE templates ADD COLUMN name TEXT COLLATE "C";
UPDATE templates SET name = id;
ALTER TABLE templates ALTER COLUMN name SET NOT NULL;
ALTER TABLE templates ADD UNIQUE (team_id, name);
CREATE INDEX templates_public_name ON templates (public, name);

ALTER TABLE template_aliases ADD COLUMN team_id TEXT COLLATE "C" NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE template_aliases ALTER COLUMN team_id DROP DEFAULT;
ALTER TABLE template_aliases DROP CONSTRAINT template_aliases_pkey;
ALTER TABLE template_aliases ADD PRIMARY KEY (team_id, alias);
CREATE INDEX template_aliases_alias ON template_aliases (alias);

-- Template builds the control plane started: who asked, for which template,
-- and whether it still runs (the concurrent-builds quota counts those). The
-- template row appears only when a build succeeds, so no reference to it.
CREATE TABLE template_builds (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    team_id     TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    template_id TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT                   -- NULL while it runs
);
CREATE INDEX template_builds_team_status ON template_builds (team_id, status);
CREATE INDEX template_builds_status ON template_builds (status, started_at);
