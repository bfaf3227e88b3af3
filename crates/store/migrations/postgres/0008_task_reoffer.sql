-- Tasks nobody takes in time are offered again (postgres).
-- Keep in lock-step with sqlite/0008_task_reoffer.sql.

-- `reoffer_after`: ms after posting (or after a release) at which an open task is posted again
-- at the bottom of the group chat; `reoffers`: how many times it has been; `reoffer_times`: the
-- most it will be.
ALTER TABLE tasks ADD COLUMN reoffer_after BIGINT;
ALTER TABLE tasks ADD COLUMN reoffers BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN reoffer_times BIGINT NOT NULL DEFAULT 0;
