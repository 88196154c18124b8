-- 0007: the address a node's agent is reached at, as the SQLite one.
ALTER TABLE nodes ADD COLUMN address TEXT NOT NULL DEFAULT '';
