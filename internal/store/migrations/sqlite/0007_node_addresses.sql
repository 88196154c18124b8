-- 0007: the address a node's agent is reached at, as the node reports it at
-- each heartbeat ('' for a node the control plane runs in its own process).
ALTER TABLE nodes ADD COLUMN address TEXT NOT NULL DEFAULT '';
