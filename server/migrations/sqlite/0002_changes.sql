-- A change counter for revocation. Every change to users, memberships,
-- namespaces, hosts and login sessions bumps it, whether made by this process,
-- the command line or another node; each server polls it and, when it moved,
-- re-checks its live terminal sessions and sockets. Inserts count too: the
-- watcher compares the users and login sessions it saw last time with the
-- current ones, so it must see every row that may later disappear.
-- SQLite trigger syntax; a Postgres port uses one trigger function instead.

CREATE TABLE changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    counter INTEGER NOT NULL
);
INSERT INTO changes (id, counter) VALUES (1, 0);

CREATE TRIGGER changes_users_update AFTER UPDATE ON users
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER changes_users_delete AFTER DELETE ON users
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;

CREATE TRIGGER changes_memberships_update AFTER UPDATE ON memberships
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER changes_memberships_delete AFTER DELETE ON memberships
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;

CREATE TRIGGER changes_namespaces_delete AFTER DELETE ON namespaces
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;

CREATE TRIGGER changes_hosts_update AFTER UPDATE ON hosts
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER changes_hosts_delete AFTER DELETE ON hosts
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;

CREATE TRIGGER changes_login_sessions_delete AFTER DELETE ON login_sessions
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;

CREATE TRIGGER changes_users_insert AFTER INSERT ON users
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER changes_memberships_insert AFTER INSERT ON memberships
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER changes_hosts_insert AFTER INSERT ON hosts
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER changes_login_sessions_insert AFTER INSERT ON login_sessions
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;
