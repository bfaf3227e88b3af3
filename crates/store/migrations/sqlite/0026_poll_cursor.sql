-- A poller's cursor as its platform gives it (sqlite).
-- Keep in lock-step with postgres/0026_poll_cursor.sql.

-- Telegram's next update id is a number; other platforms hand back a marker or a timestamp
-- string. The cursor is kept as the platform wrote it; none means "from the start".
ALTER TABLE channel_state ADD COLUMN poll_cursor TEXT;
UPDATE channel_state SET poll_cursor = CAST(poll_offset AS TEXT) WHERE poll_offset <> 0;
