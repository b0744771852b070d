-- 1: typed input is recorded too (asciicast `i` events), never while the
-- target has echo off or shows a password prompt. Off by default.
ALTER TABLE namespaces ADD COLUMN recording_input INTEGER NOT NULL DEFAULT 0;
