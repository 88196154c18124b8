-- 0009: the kept copy of a snapshot's image, as the SQLite one.
ALTER TABLE snapshots ADD COLUMN kept_image TEXT NOT NULL DEFAULT '';
