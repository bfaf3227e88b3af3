-- okno core schema (PostgreSQL). Times are milliseconds since the Unix epoch; JSON is TEXT;
-- flags are BIGINT 0/1. Keep in lock-step with sqlite/0001_core.sql.
CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'active',
    status_detail TEXT,
    deleted BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    external_id TEXT UNIQUE,
    name TEXT,
    phone TEXT,
    email TEXT,
    attrs TEXT NOT NULL DEFAULT '{}',
    preferred_channel_id TEXT,
    search TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX contacts_phone ON contacts (phone);
CREATE INDEX contacts_email ON contacts (email);

CREATE TABLE contact_groups (
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    grp TEXT NOT NULL,
    PRIMARY KEY (contact_id, grp)
);
CREATE INDEX contact_groups_grp ON contact_groups (grp, contact_id);

CREATE TABLE identities (
    id TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    channel_id TEXT NOT NULL REFERENCES channels (id),
    user_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    username TEXT,
    display_name TEXT,
    blocked BIGINT NOT NULL DEFAULT 0,
    opted_out BIGINT NOT NULL DEFAULT 0,
    last_seen_at BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (channel_id, user_id)
);
CREATE INDEX identities_contact ON identities (contact_id);

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    status TEXT NOT NULL,
    assignee TEXT,
    labels TEXT NOT NULL DEFAULT '[]',
    unread BIGINT NOT NULL DEFAULT 0,
    last_message_id TEXT,
    last_inbound_channel_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX conversations_contact ON conversations (contact_id, id);
CREATE INDEX conversations_recent ON conversations (updated_at, id);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    contact_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    text TEXT,
    buttons TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    error TEXT,
    external_id TEXT,
    button_data TEXT,
    reply_to TEXT,
    edited BIGINT NOT NULL DEFAULT 0,
    author TEXT,
    dedup_key TEXT,
    idempotency_key TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (channel_id, dedup_key)
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
CREATE INDEX messages_external ON messages (channel_id, external_id);

CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    message_id TEXT,
    name TEXT NOT NULL,
    mime TEXT NOT NULL,
    size BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    note TEXT,
    source_url TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    revoked BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE operators (
    id TEXT PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    active BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_status_code BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id);

-- The outbox: one row per piece of pending work. A row is deleted when its work ends;
-- the outcome lives on the message or delivery it refers to.
CREATE TABLE jobs (
    seq BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    ref_id TEXT NOT NULL,
    queue_key TEXT,
    run_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_at);
CREATE INDEX jobs_queue ON jobs (queue_key, seq);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
