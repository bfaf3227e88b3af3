-- Operators can be disabled, and their sessions live in the database (sqlite).
-- Keep in lock-step with postgres/0012_operator_sessions.sql.

-- A disabled operator cannot sign in; disabling them ends their sessions.
ALTER TABLE operators ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;

-- One row per signed-in browser, so a logout, a disabled account or a new password ends a
-- session in every okno process on the database. `hash` is the SHA-256 of the cookie's secret:
-- the secret itself is never stored, so a copy of the database opens no session.
CREATE TABLE operator_sessions (
    hash TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL REFERENCES operators (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    addr TEXT
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);
CREATE INDEX operator_sessions_expiry ON operator_sessions (expires_at);
