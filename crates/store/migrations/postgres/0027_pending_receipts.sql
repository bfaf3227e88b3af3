-- Delivery receipts that came before their message's platform id was stored (postgres).
-- Keep in lock-step with sqlite/0027_pending_receipts.sql.

-- A platform may report "sent" or "delivered" for a message before okno has written the id the
-- platform gave it (the worker records it after the send's answer). Such a receipt waits here
-- and is applied when that id is written; one no message claims within ten minutes is dropped.
CREATE TABLE pending_receipts (
    channel_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX pending_receipts_key ON pending_receipts (channel_id, external_id);
CREATE INDEX pending_receipts_age ON pending_receipts (created_at);
