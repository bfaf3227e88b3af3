-- The outbox keeps each conversation's sends in order: a job waits while an earlier job of its
-- queue exists (live work waits only for earlier live work). Finding the jobs that may run by
-- checking every due job for an earlier one costs a lookup per queued job on every claim, so a
-- backlog of thousands made each claim slow. `blocked` remembers it instead: set when a job is
-- queued behind another, cleared when the job before it leaves. The claim reads only unblocked
-- jobs (jobs_ready) and still checks each one it takes, so a flag that is wrong can delay a job,
-- never reorder it; the workers' sweep clears a flag left set.
-- Keep in lock-step with postgres/0014_outbox_heads.sql.
ALTER TABLE jobs ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;

UPDATE jobs SET blocked = 1
WHERE queue_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM jobs p WHERE p.queue_key = jobs.queue_key AND p.seq < jobs.seq
              AND (jobs.lane <> 0 OR p.lane = 0));

CREATE INDEX jobs_ready ON jobs (lane, run_at) WHERE blocked = 0;

CREATE TRIGGER jobs_queue_behind AFTER INSERT ON jobs WHEN NEW.queue_key IS NOT NULL
BEGIN
    UPDATE jobs SET blocked = 1
    WHERE seq = NEW.seq
      AND EXISTS (SELECT 1 FROM jobs p WHERE p.queue_key = NEW.queue_key AND p.seq < NEW.seq
                  AND (NEW.lane <> 0 OR p.lane = 0));
END;

-- When a job leaves, the first job of its queue and the first live job of its queue have
-- nothing left to wait for.
CREATE TRIGGER jobs_queue_next AFTER DELETE ON jobs WHEN OLD.queue_key IS NOT NULL
BEGIN
    UPDATE jobs SET blocked = 0
    WHERE blocked = 1
      AND seq IN ((SELECT min(seq) FROM jobs WHERE queue_key = OLD.queue_key),
                  (SELECT min(seq) FROM jobs WHERE queue_key = OLD.queue_key AND lane = 0));
END;
