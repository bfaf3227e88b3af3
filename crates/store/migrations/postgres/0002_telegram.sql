-- Telegram and linking (PostgreSQL). Keep in lock-step with sqlite/0002_telegram.sql.

-- Per-message sending options (reply keyboards and their removal).
ALTER TABLE messages ADD COLUMN options TEXT NOT NULL DEFAULT '{}';

-- Per-channel receiving state: the polling offset and the lease that lets exactly one
-- process poll a bot.
CREATE TABLE channel_state (
    channel_id TEXT PRIMARY KEY,
    poll_offset BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT
);

-- One-time codes that link a messenger identity to a business contact.
CREATE TABLE link_codes (
    code TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);

-- Button data longer than a platform allows, kept here behind a short token.
CREATE TABLE callback_tokens (
    token TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    data_hash TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX callback_tokens_data ON callback_tokens (channel_id, data_hash);
