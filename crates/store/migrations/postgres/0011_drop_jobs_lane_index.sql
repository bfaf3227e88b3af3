-- The (lane, seq) index of 0006 let PostgreSQL's planner answer the claim's "no earlier live job
-- in this conversation" check by walking every earlier live job instead of the conversation's
-- own (jobs_queue), which made each claim scan the whole outbox under load (postgres).
-- Keep in lock-step with sqlite/0011_drop_jobs_lane_index.sql.
DROP INDEX IF EXISTS jobs_lane;
