-- Recordings: what replay needs per terminal session, and the recording
-- settings of each namespace (the local target uses the defaults).

-- 'strict': a session whose recording cannot be written is ended;
-- 'best_effort': it goes on and its row says the recording is incomplete.
ALTER TABLE namespaces ADD COLUMN recording_policy TEXT NOT NULL DEFAULT 'strict';
-- Seconds a finished recording is kept; NULL keeps it for ever.
ALTER TABLE namespaces ADD COLUMN recording_retention_secs INTEGER;
-- 1: members of the namespace may replay each other's sessions there.
ALTER TABLE namespaces ADD COLUMN recordings_shared INTEGER NOT NULL DEFAULT 0;

-- Length of the session in milliseconds, once it ended.
ALTER TABLE terminal_sessions ADD COLUMN duration_ms INTEGER;
-- 'recording', 'complete', 'incomplete' (best effort lost events or the
-- writer failed), 'recovered' (cut back to its last whole line after a
-- crash), 'deleted' (retention); NULL: never recorded.
ALTER TABLE terminal_sessions ADD COLUMN recording_state TEXT;
CREATE INDEX terminal_sessions_started ON terminal_sessions(started_at);
