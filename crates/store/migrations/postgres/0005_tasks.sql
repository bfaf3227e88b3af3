-- Tasks posted to a group chat that exactly one executor can take (PostgreSQL).
-- Keep in lock-step with sqlite/0005_tasks.sql.

-- `status` is `open` or `claimed`; a claim is one conditional UPDATE (… WHERE status = 'open'),
-- so of presses arriving together exactly one wins. `version` grows with every claim and
-- release; `shown_version` is the version the group message shows, so a change whose edit
-- did not reach the chat (a crash in between) is shown on the next press.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id),
    chat_id TEXT NOT NULL,
    message_id TEXT,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    private_text TEXT,
    data TEXT NOT NULL,
    grp TEXT,
    status TEXT NOT NULL,
    claimed_user_id TEXT,
    claimed_name TEXT,
    claimed_username TEXT,
    claimed_contact_id TEXT,
    claimed_at BIGINT,
    version BIGINT NOT NULL DEFAULT 0,
    shown_version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tasks_status ON tasks (status, id);
