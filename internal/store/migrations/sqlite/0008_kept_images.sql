-- 0008: the image of a sandbox's last pause that the control plane kept, by
-- its content address ('' for none), so that the sandbox can resume on
-- another node when its own is gone.
ALTER TABLE sandbox_lifecycle ADD COLUMN kept_image TEXT NOT NULL DEFAULT '';
