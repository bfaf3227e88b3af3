-- Indexes for the operator window's lists (postgres).
-- Keep in lock-step with sqlite/0018_list_indexes.sql.

-- The events list: newest first (by id), filtered by type or by status, reads one page of
-- index entries instead of every matching event.
CREATE INDEX events_type_id ON events (type, id);
CREATE INDEX events_status_id ON events (status, id);

-- The Telegram groups the task form offers: group parties only (a group's chat id is negative),
-- not every person okno knows.
CREATE INDEX identities_groups ON identities (channel_id) WHERE chat_id LIKE '-%';
