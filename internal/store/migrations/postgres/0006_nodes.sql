-- 0006: nodes, as the SQLite one. One row per node the control plane reaches:
-- what it reported at its last heartbeat and when, by the database's clock, so
-- that every replica judges a node's silence by one clock.
CREATE TABLE nodes (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    status       TEXT NOT NULL,   -- set by the operator: 'ready' or 'draining'
    report       TEXT NOT NULL,   -- JSON, the control plane's NodeReport
    heartbeat_at BIGINT NOT NULL, -- Unix ns of the last heartbeat
    created_at   BIGINT NOT NULL  -- Unix ns of the first
);
