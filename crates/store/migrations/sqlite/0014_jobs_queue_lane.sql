-- The claim checks each due job for an earlier live job in its conversation. With only
-- (queue_key, seq) the lane had to be read from each earlier row (on PostgreSQL a heap visit
-- per row, through dead rows until vacuum); with the lane in the index the check is answered
-- from the index alone.
-- Keep in lock-step with postgres/0014_jobs_queue_lane.sql.
CREATE INDEX jobs_queue_lane ON jobs (queue_key, lane, seq);
