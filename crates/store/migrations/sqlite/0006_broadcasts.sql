-- Broadcasts: one message to many people, paced under the platforms' limits (sqlite).
-- Keep in lock-step with postgres/0006_broadcasts.sql.

-- `spec` holds the audience, the text (a template), buttons, attachments and pace.
-- `status`: scheduled | running | paused | done | cancelled. `expanded` is set once the
-- audience has been written into broadcast_recipients (the total is known from then on).
CREATE TABLE broadcasts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    send_at INTEGER,
    expanded INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX broadcasts_created ON broadcasts (created_at, id);

-- One row per person: written once (the primary key makes a repeated expansion harmless) and
-- moved from `pending` to `queued` in the same transaction that writes the person's message,
-- so a person is never given two messages and never skipped, whatever happens to the process.
-- `state`: pending | queued | skipped | failed | cancelled.
CREATE TABLE broadcast_recipients (
    broadcast_id TEXT NOT NULL REFERENCES broadcasts (id),
    contact_id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    state TEXT NOT NULL,
    channel_id TEXT,
    message_id TEXT,
    reason TEXT,
    tried TEXT NOT NULL DEFAULT '[]',
    answer TEXT,
    answered_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (broadcast_id, contact_id)
);
CREATE INDEX broadcast_recipients_next ON broadcast_recipients (broadcast_id, state, pos);
CREATE INDEX broadcast_recipients_message ON broadcast_recipients (message_id);

-- Work in lane 1 (broadcast sends) is claimed after lane 0 (conversations, notifications).
ALTER TABLE jobs ADD COLUMN lane INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_lane ON jobs (lane, seq);
