-- The claim checks each due job for an earlier live job in its conversation. With only
-- (queue_key, seq) the lane had to be read from each earlier row (on PostgreSQL a heap visit
-- per row, through dead rows until vacuum); with the lane in the index the check is answered
-- from the index alone.
-- Keep in lock-step with sqlite/0014_jobs_queue_lane.sql.
CREATE INDEX jobs_queue_lane ON jobs (queue_key, lane, seq);

-- The outbox is written and emptied all day: vacuum it after a thousand dead rows rather than
-- after a fifth of the table, so claims do not wade through deleted jobs.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                      autovacuum_analyze_scale_factor = 0.05);
