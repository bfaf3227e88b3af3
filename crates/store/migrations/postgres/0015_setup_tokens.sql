-- One-time links that let the first administrator choose a login and password (postgres).
-- Keep in lock-step with sqlite/0015_setup_tokens.sql.

-- `hash` is the SHA-256 of the link's secret: the secret itself is only printed, never stored.
-- A process that starts with no operators adds a link; the first administrator created through
-- any of them removes them all.
CREATE TABLE setup_tokens (
    hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
