-- Monitoring: an append-only audit trail, guard rules per namespace, the
-- commands typed in terminal sessions with the guard's verdict, and
-- termination of a live session requested from outside the server.
-- SQLite syntax. Postgres differs where noted: `ALTER TABLE ... RENAME TO` is
-- the same; triggers there call a trigger function (one `RAISE EXCEPTION`
-- function for the append-only rule, the one `changes` function of
-- 0002_changes.sql for the counters); `INTEGER PRIMARY KEY AUTOINCREMENT`
-- becomes `BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY`.

-- The audit log is a trail of events, never edited: rows are only appended.
ALTER TABLE audit_log RENAME TO audit_events;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
-- `audit events --since` reads by time.
CREATE INDEX audit_events_at ON audit_events(at);

-- Rules the command guard applies to lines typed in a namespace's hosts:
-- the lowest priority number first, then the oldest rule.
CREATE TABLE guard_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace_id INTEGER NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
    priority INTEGER NOT NULL DEFAULT 100,
    kind TEXT NOT NULL CHECK (kind IN ('word', 'regex')),
    pattern TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('allow', 'deny', 'warn')),
    created_at TEXT NOT NULL,
    created_by TEXT                       -- user name, or NULL for the command line
);
CREATE INDEX guard_rules_namespace ON guard_rules(namespace_id);

-- Any change to the rules bumps the change counter, so running servers
-- reload them (the revocation watcher polls the counter).
CREATE TRIGGER changes_guard_rules_insert AFTER INSERT ON guard_rules
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER changes_guard_rules_update AFTER UPDATE ON guard_rules
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER changes_guard_rules_delete AFTER DELETE ON guard_rules
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;

-- Every command line typed in a terminal session, with the guard's verdict.
-- No foreign keys: the log keeps what was true when the line was typed
-- (rule_id may name a rule removed since; `rule` keeps its description).
CREATE TABLE commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,             -- terminal_sessions.id
    user_id INTEGER NOT NULL,             -- users.id
    target TEXT NOT NULL,                 -- host name or 'local'
    namespace TEXT NOT NULL,              -- '' for the local target
    at TEXT NOT NULL,                     -- RFC 3339
    offset_ms INTEGER NOT NULL,           -- time into the session's recording
    line TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('allow', 'deny', 'warn', 'unchecked')),
    rule_id INTEGER,
    rule TEXT                             -- the rule as it read then, or the reason
);
CREATE INDEX commands_session ON commands(session_id);
CREATE INDEX commands_at ON commands(at);
CREATE INDEX commands_user ON commands(user_id);

-- A termination requested by an admin or the command line: the running
-- server ends the session (status 'terminated') when it sees the request.
ALTER TABLE terminal_sessions ADD COLUMN terminate_reason TEXT;
ALTER TABLE terminal_sessions ADD COLUMN terminated_by TEXT;  -- user name, or 'cli'
CREATE TRIGGER changes_terminal_sessions_terminate
AFTER UPDATE OF terminate_reason ON terminal_sessions
WHEN NEW.terminate_reason IS NOT NULL
BEGIN UPDATE changes SET counter = counter + 1 WHERE id = 1; END;
