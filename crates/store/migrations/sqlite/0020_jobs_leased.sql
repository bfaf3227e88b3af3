-- The leased jobs by owner (sqlite). Keep in lock-step with postgres/0020_jobs_leased.sql.

-- Renewing a process's leases and looking for processes that are gone both read the jobs by
-- their owner; only the few leased at a time are in this index, not the waiting backlog.
CREATE INDEX jobs_leased ON jobs (lease_owner) WHERE lease_owner IS NOT NULL;
