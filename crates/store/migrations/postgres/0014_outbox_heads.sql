-- The outbox keeps each conversation's sends in order: a job waits while an earlier job of its
-- queue exists (live work waits only for earlier live work). Finding the jobs that may run by
-- checking every due job for an earlier one costs a lookup per queued job on every claim, so a
-- backlog of thousands made each claim slow. `blocked` remembers it instead: set when a job is
-- queued behind another, cleared when the job before it leaves. The claim reads only unblocked
-- jobs (jobs_ready) and still checks each one it takes, so a flag that is wrong can delay a job,
-- never reorder it; the workers' sweep clears a flag left set.
-- Keep in lock-step with sqlite/0014_outbox_heads.sql.
ALTER TABLE jobs ADD COLUMN blocked BIGINT NOT NULL DEFAULT 0;

UPDATE jobs SET blocked = 1
WHERE queue_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM jobs p WHERE p.queue_key = jobs.queue_key AND p.seq < jobs.seq
              AND (jobs.lane <> 0 OR p.lane = 0));

CREATE INDEX jobs_ready ON jobs (lane, run_at) WHERE blocked = 0;

-- A job queued behind another is blocked. The job just before it is locked (KEY SHARE) for the
-- rest of the transaction: a transaction deleting it at the same moment either finishes first
-- (and the new job sees it gone) or waits for this one (and then sees the new job to unblock).
-- The functions keep PostgreSQL's plan cache (okno's sessions plan every statement afresh):
-- their statements are single-row index lookups, and planning them on every row cost more
-- than running them.
CREATE FUNCTION okno_jobs_queue_behind() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = auto AS $$
BEGIN
    IF NEW.queue_key IS NOT NULL THEN
        PERFORM 1 FROM jobs p
        WHERE p.queue_key = NEW.queue_key AND p.seq < NEW.seq AND (NEW.lane <> 0 OR p.lane = 0)
        ORDER BY p.seq DESC LIMIT 1
        FOR KEY SHARE;
        IF FOUND THEN
            NEW.blocked := 1;
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER jobs_queue_behind BEFORE INSERT ON jobs
FOR EACH ROW EXECUTE FUNCTION okno_jobs_queue_behind();

-- When a job leaves, the first job of its queue has nothing left to wait for, nor (when the job
-- was live) has the first live job. A queue left empty costs one index lookup.
CREATE FUNCTION okno_jobs_queue_next() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = auto AS $$
DECLARE
    next_seq BIGINT;
    next_blocked BIGINT;
BEGIN
    IF OLD.queue_key IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT seq, blocked INTO next_seq, next_blocked FROM jobs
    WHERE queue_key = OLD.queue_key ORDER BY seq LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF next_blocked = 1 THEN
        UPDATE jobs SET blocked = 0 WHERE seq = next_seq;
    END IF;
    IF OLD.lane = 0 THEN
        SELECT seq, blocked INTO next_seq, next_blocked FROM jobs
        WHERE queue_key = OLD.queue_key AND lane = 0 ORDER BY seq LIMIT 1;
        IF FOUND AND next_blocked = 1 THEN
            UPDATE jobs SET blocked = 0 WHERE seq = next_seq;
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_queue_next AFTER DELETE ON jobs
FOR EACH ROW EXECUTE FUNCTION okno_jobs_queue_next();

-- The outbox is written and emptied all day: vacuum it after a thousand dead rows rather than
-- after a fifth of the table, so claims do not wade through deleted jobs.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                      autovacuum_analyze_scale_factor = 0.05);
