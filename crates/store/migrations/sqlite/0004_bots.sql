-- Bots: their definitions, each person's place in them, news, relayed questions (SQLite).
-- Keep in lock-step with postgres/0004_bots.sql.

-- One bot per channel; `source` is the file as the administrator wrote it.
CREATE TABLE bots (
    channel_id TEXT PRIMARY KEY REFERENCES channels (id),
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Where a person is in a channel's bot: menu, form, list page.
CREATE TABLE bot_sessions (
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

CREATE TABLE news (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    groups TEXT NOT NULL,
    attachment_id TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX news_created ON news (created_at);

-- A question relayed to one feed recipient; `relay_message_id` is okno's message in the
-- recipient's chat, which the recipient answers with Reply.
CREATE TABLE bot_relays (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    feed TEXT NOT NULL,
    question_id TEXT NOT NULL,
    asker_contact_id TEXT NOT NULL,
    asker_channel_id TEXT NOT NULL,
    recipient_contact_id TEXT NOT NULL,
    relay_message_id TEXT NOT NULL UNIQUE,
    answered_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX bot_relays_open ON bot_relays (channel_id, feed, answered_at);
CREATE INDEX bot_relays_question ON bot_relays (question_id);
