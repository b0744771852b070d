-- Multi-node: the server nodes sharing one database, and which node runs each
-- terminal session. postgres/0001_initial.sql has the same in its own form.

-- The node (nodes.id) running the session; NULL = single node.
ALTER TABLE terminal_sessions ADD COLUMN node_id TEXT;
-- Freezing asked for on another node: 1 freeze, 0 unfreeze, NULL none (the
-- node running the session applies it and clears it); seen through the
-- change counter like a termination request.
ALTER TABLE terminal_sessions ADD COLUMN freeze_request INTEGER;
ALTER TABLE terminal_sessions ADD COLUMN freeze_by TEXT;
CREATE TRIGGER changes_terminal_sessions_freeze
AFTER UPDATE OF freeze_request ON terminal_sessions
WHEN NEW.freeze_request IS NOT NULL
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;

-- The server nodes sharing this database; each one refreshes its heartbeat
-- while it runs.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,                    -- where the other nodes reach it
    key_check TEXT NOT NULL,              -- check value of the node's key
    started_at TEXT NOT NULL,             -- RFC 3339
    heartbeat_at INTEGER NOT NULL         -- unix seconds
);

-- Failed logins per account name and per address, shared by every node
-- (several nodes; a single node counts in memory): `key` is `name:<name>`
-- or `addr:<address or /64>`.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_at INTEGER NOT NULL               -- unix seconds of the last failure
);
