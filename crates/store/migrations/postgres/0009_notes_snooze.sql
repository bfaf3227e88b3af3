-- Operators' private notes on a conversation, and snoozing (postgres).
-- Keep in lock-step with sqlite/0009_notes_snooze.sql.

-- A note is never sent: only operators see it, in the conversation's thread.
CREATE TABLE notes (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notes_conversation ON notes (conversation_id, id);

-- A snoozed conversation is `pending` until this time (or until the person writes), then open.
ALTER TABLE conversations ADD COLUMN snoozed_until BIGINT;
