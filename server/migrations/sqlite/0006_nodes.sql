-- Multi-node: the server nodes sharing one database, and which node runs each
-- terminal session. postgres/0001_initial.sql has the same in its own form.

-- The node (nodes.id) running the session; NULL = single node.
ALTER TABLE terminal_sessions ADD COLUMN node_id TEXT;

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
