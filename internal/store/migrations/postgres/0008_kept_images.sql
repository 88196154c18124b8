-- 0008: the kept image of a sandbox's last pause, as the SQLite one.
ALTER TABLE sandbox_lifecycle ADD COLUMN kept_image TEXT NOT NULL DEFAULT '';
