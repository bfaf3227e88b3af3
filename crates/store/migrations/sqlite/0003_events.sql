-- Business events and the rules that turn them into messages (SQLite).
-- Keep in lock-step with postgres/0003_events.sql.

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL,
    status TEXT NOT NULL,
    send_at INTEGER,
    created_at INTEGER NOT NULL,
    processed_at INTEGER
);
CREATE INDEX events_type ON events (type, created_at);

CREATE TABLE rules (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    spec TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX rules_event ON rules (event);

-- One row per person an event reached (or tried to): never two for the same person.
CREATE TABLE event_deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    rule_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    channel_id TEXT,
    message_id TEXT,
    error TEXT,
    tried TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    UNIQUE (event_id, contact_id)
);
CREATE INDEX event_deliveries_message ON event_deliveries (message_id);

CREATE TABLE event_unresolved (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    rule_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX event_unresolved_event ON event_unresolved (event_id);

-- Answers to notifications: button presses and text replies.
CREATE TABLE answers (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    contact_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX answers_event ON answers (event_id);
