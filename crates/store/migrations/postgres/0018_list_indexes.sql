-- Indexes for the events list (postgres): newest first (by id), filtered by type or by status,
-- reads one page of index entries instead of every matching event.
-- Keep in lock-step with sqlite/0018_events_list.sql.
CREATE INDEX events_type_id ON events (type, id);
CREATE INDEX events_status_id ON events (status, id);
