-- Which key seals the stored credentials (sqlite). Keep in lock-step with postgres/0022_secret_key.sql.

-- One row: the id of the key and a known text sealed under it, so that a process started with
-- another key is refused before it seals anything under its own — even when no credential is
-- stored yet. okno writes it at start; SQL alone cannot, as the key is not in the database.
CREATE TABLE secret_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_id TEXT NOT NULL,
    proof TEXT NOT NULL
);
