-- The inbox's order, and the labels of pressed buttons (sqlite).
-- Keep in lock-step with postgres/0017_inbox_order.sql.

-- The inbox is ordered by the time of a conversation's last message, inbound or outbound.
-- `updated_at` moves with every change (a status, an assignee, labels), so ordering by it let
-- bookkeeping reorder the list; `last_message_at` moves only when a message is written. A
-- conversation without messages sorts by when it began.
ALTER TABLE conversations ADD COLUMN last_message_at INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET last_message_at = COALESCE(
    (SELECT m.created_at FROM messages m WHERE m.id = conversations.last_message_id), created_at);
CREATE INDEX conversations_last_message ON conversations (last_message_at, id);
-- Nothing reads conversations in `updated_at` order any more; the index only cost writes.
DROP INDEX conversations_recent;

-- A button press keeps the label of the button pressed, read at the press from the message
-- that carried the buttons: that keyboard may be replaced later (an integration edits or
-- removes a message's buttons once pressed), and the data alone (`bot:item:main:3:4a9d6b`) means nothing to a
-- person.
ALTER TABLE messages ADD COLUMN button_label TEXT;
