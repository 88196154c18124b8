-- 0005: leases, as the SQLite one. A lease is held by one control-plane
-- replica at a time until it expires, unless renewed: the lock of an
-- operation on one sandbox or build ('op/<key>'), or a background duty that
-- one replica runs for all ('background'). Expiry is by the database's clock.
CREATE TABLE leases (
    name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    holder     TEXT COLLATE "C" NOT NULL, -- the replica's ID
    expires_at BIGINT NOT NULL            -- Unix ns; free from then on
);
CREATE INDEX leases_expires ON leases (expires_at);
