-- Search over every message's text, and an index for reports by time (sqlite).
-- Keep in lock-step with postgres/0013_message_search.sql.

-- `body` is the message's text lowercased by okno itself (Unicode rules, so «ЗАКАЗ» and
-- «Заказ» both become «заказ»): SQLite's lower() and LIKE fold only ASCII. It is written with
-- the message, in the same transaction, and again when the message is edited.
CREATE TABLE message_search (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
-- A trigram index over `body`: a search for any substring of three or more characters reads
-- the index, not every message. okno adds the rows after `upto` to it in batches (FTS5 writes a
-- segment per transaction: one per message would cost every write); a search reads the rows
-- after `upto` with LIKE. AUTOINCREMENT: an id is never reused, so "after upto" is exact.
CREATE VIRTUAL TABLE message_search_fts USING fts5(body, content = 'message_search', content_rowid = 'id', tokenize = 'trigram');
CREATE TABLE message_search_fts_state (
    id INTEGER PRIMARY KEY,
    upto INTEGER NOT NULL
);
INSERT INTO message_search_fts_state (id, upto) VALUES (1, 0);
-- An edited or removed copy already in the index is changed there at once.
CREATE TRIGGER message_search_ad AFTER DELETE ON message_search
WHEN old.id <= (SELECT upto FROM message_search_fts_state WHERE id = 1) BEGIN
    INSERT INTO message_search_fts (message_search_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER message_search_au AFTER UPDATE ON message_search
WHEN old.id <= (SELECT upto FROM message_search_fts_state WHERE id = 1) BEGIN
    INSERT INTO message_search_fts (message_search_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO message_search_fts (rowid, body) VALUES (new.id, new.body);
END;

-- Messages written before this migration are indexed by okno after it starts, in slices, in
-- message id order; `after` is the last id done. The row is removed when all are done.
CREATE TABLE message_search_backfill (
    id INTEGER PRIMARY KEY,
    after TEXT NOT NULL
);
INSERT INTO message_search_backfill (id, after) VALUES (1, '');

-- Reports count a period's messages by day and channel.
CREATE INDEX messages_created ON messages (created_at);
