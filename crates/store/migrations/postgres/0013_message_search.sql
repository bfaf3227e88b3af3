-- Search over every message's text, and an index for reports by time (postgres).
-- Keep in lock-step with sqlite/0013_message_search.sql.

-- `body` is the message's text lowercased by okno itself (Unicode rules, so «ЗАКАЗ» and
-- «Заказ» both become «заказ»): PostgreSQL's lower() depends on the database's collation.
-- It is written with the message, in the same transaction, and again when it is edited.
CREATE TABLE message_search (
    message_id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
-- A trigram index (pg_trgm) over `body`: `LIKE '%text%'` reads the index, not every message.
-- pg_trgm ships with PostgreSQL and is a trusted extension (the database's owner may create
-- it); where it cannot be created the search still works, reading the whole table.
DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS pg_trgm; EXECUTE 'CREATE INDEX message_search_trgm ON message_search USING gin (body gin_trgm_ops)'; EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'okno: no pg_trgm (%), message search reads the whole table', SQLERRM; END $$;

-- Messages written before this migration are indexed by okno after it starts, in slices, in
-- message id order; `after` is the last id done. The row is removed when all are done.
CREATE TABLE message_search_backfill (
    id BIGINT PRIMARY KEY,
    after TEXT NOT NULL
);
INSERT INTO message_search_backfill (id, after) VALUES (1, '');

-- Reports count a period's messages by day and channel.
CREATE INDEX messages_created ON messages (created_at);
