-- Whether an identity is a group chat, as its channel's platform said (postgres).
-- Keep in lock-step with sqlite/0025_group_identities.sql.

-- A group chat is one party: the thread is with the group, and replies go to it; the channel's
-- bot, broadcast stop words and surveys answer people, not groups. Set by the platform when it
-- reports the chat.
ALTER TABLE identities ADD COLUMN is_group INTEGER NOT NULL DEFAULT 0;

-- Before this column the one platform with group chats, Telegram, gave them ids starting with '-'.
UPDATE identities SET is_group = 1
 WHERE chat_id LIKE '-%' AND channel_id IN (SELECT id FROM channels WHERE kind = 'telegram');

-- The group chats a task may be posted to are listed through this index.
DROP INDEX identities_groups;
CREATE INDEX identities_groups ON identities (channel_id) WHERE is_group = 1;
