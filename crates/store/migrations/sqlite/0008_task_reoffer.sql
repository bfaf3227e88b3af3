-- Tasks nobody takes in time are offered again (sqlite).
-- Keep in lock-step with postgres/0008_task_reoffer.sql.

-- `reoffer_after`: ms after posting (or after a release) at which an open task is posted again
-- at the bottom of the group chat; `reoffers`: how many times it has been; `reoffer_times`: the
-- most it will be.
ALTER TABLE tasks ADD COLUMN reoffer_after INTEGER;
ALTER TABLE tasks ADD COLUMN reoffers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN reoffer_times INTEGER NOT NULL DEFAULT 0;
