-- 0009: the copy of a snapshot's image the control plane keeps, by its content
-- address ('' for none), so that sandboxes start from it on any node.
ALTER TABLE snapshots ADD COLUMN kept_image TEXT NOT NULL DEFAULT '';
