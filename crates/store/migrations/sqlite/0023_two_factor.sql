-- Two-factor sign-in with one-time codes from an authenticator app (TOTP, RFC 6238) (sqlite).
-- Keep in lock-step with postgres/0023_two_factor.sql.

-- An operator's authenticator: the shared secret, sealed like the channels' credentials.
-- `enabled_at` is NULL while it is being set up (shown, its first code not yet confirmed).
-- `last_step` is the newest 30-second step whose code was accepted: a code is taken once.
CREATE TABLE operator_totp (
    operator_id TEXT PRIMARY KEY REFERENCES operators (id),
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    enabled_at INTEGER,
    last_step INTEGER NOT NULL DEFAULT 0
);

-- One-time recovery codes for a lost phone, kept as SHA-256 hashes; a used one is deleted.
CREATE TABLE operator_recovery_codes (
    operator_id TEXT NOT NULL REFERENCES operators (id),
    hash TEXT NOT NULL,
    PRIMARY KEY (operator_id, hash)
);

-- A password accepted, the second step still to come: the SHA-256 of the secret in the
-- browser's cookie, for whom, until when, and how many wrong codes it has had.
CREATE TABLE login_challenges (
    hash TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL REFERENCES operators (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    addr TEXT
);
CREATE INDEX login_challenges_expiry ON login_challenges (expires_at);
