-- termroom schema. Portable SQL (SQLite and Postgres): times are RFC 3339 text
-- except ticket expiry (unix seconds, compared numerically).

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,          -- argon2id PHC string
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE login_sessions (
    token_hash TEXT PRIMARY KEY,          -- SHA-256 of the cookie token, hex
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL           -- unix seconds
);
CREATE INDEX login_sessions_user ON login_sessions(user_id);

CREATE TABLE tickets (
    hash TEXT PRIMARY KEY,                -- SHA-256 of the ticket, hex; the ticket itself is never stored
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,                -- 'chat' or 'term:<session id>'
    login_session TEXT,                   -- token_hash of the login session that asked for it
    expires_at INTEGER NOT NULL           -- unix seconds
);

CREATE TABLE rooms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    body TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX messages_room_id ON messages(room_id, id);

CREATE TABLE namespaces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    namespace_id INTEGER NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (namespace_id, user_id)
);

CREATE TABLE hosts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    namespace_id INTEGER NOT NULL REFERENCES namespaces(id),
    address TEXT NOT NULL,
    port INTEGER NOT NULL,
    ssh_user TEXT NOT NULL,
    auth_kind TEXT NOT NULL CHECK (auth_kind IN ('password', 'key')),
    secret_nonce BLOB NOT NULL,           -- XChaCha20-Poly1305 nonce, per row
    secret_ciphertext BLOB NOT NULL,      -- password or private key, encrypted
    host_key_fingerprint TEXT,            -- pinned 'SHA256:...'; NULL = not trusted yet
    guard_policy TEXT NOT NULL DEFAULT 'off',
    created_at TEXT NOT NULL
);

CREATE TABLE terminal_sessions (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    host_id INTEGER REFERENCES hosts(id) ON DELETE SET NULL,
    target TEXT NOT NULL,                 -- host name or 'local'
    namespace TEXT NOT NULL DEFAULT '',
    remote_addr TEXT,
    user_agent TEXT,
    cols INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    status TEXT NOT NULL,                 -- 'running', 'exited', 'failed', 'closed'
    exit_code INTEGER,
    recording_id TEXT,
    recording_size INTEGER,
    recording_digest TEXT
);
CREATE INDEX terminal_sessions_user ON terminal_sessions(user_id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT,                           -- user name, or NULL for the system
    action TEXT NOT NULL,                 -- e.g. 'login.failed', 'host.key_mismatch'
    target TEXT,
    detail TEXT
);
