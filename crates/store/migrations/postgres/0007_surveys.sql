-- Surveys: questions sent one after another, answers stored per person (PostgreSQL).
-- Keep in lock-step with sqlite/0007_surveys.sql.

-- `spec` is the checked definition (JSON). `trigger_event` is set for surveys started by a
-- business event. A date-triggered survey is scanned by a chain of `survey_scan` jobs whose
-- ref is `<survey id>:<scan_token>`: a job holding an older token is a stale duplicate.
CREATE TABLE surveys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    trigger_event TEXT,
    active BIGINT NOT NULL DEFAULT 1,
    scan_token TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX surveys_active_name ON surveys (name) WHERE active = 1;
CREATE INDEX surveys_event ON surveys (trigger_event);

-- One run per survey, person and trigger key (`manual`, `event:<id>`, `date:<field>:<day>`):
-- the unique key is what makes a retried event or a repeated scan ask nobody twice.
-- `status`: queued (another survey of the person is running) → active → completed | expired;
-- or unreachable (no channel reaches the person). `step` is the question being asked.
CREATE TABLE survey_runs (
    id TEXT PRIMARY KEY,
    survey_id TEXT NOT NULL REFERENCES surveys (id),
    contact_id TEXT NOT NULL,
    run_key TEXT NOT NULL,
    status TEXT NOT NULL,
    step BIGINT NOT NULL DEFAULT 0,
    channel_id TEXT,
    error TEXT,
    deadline_at BIGINT,
    reminded_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (survey_id, contact_id, run_key)
);
CREATE INDEX survey_runs_contact ON survey_runs (contact_id, status, created_at);
CREATE INDEX survey_runs_survey ON survey_runs (survey_id, status);

-- One answer per run and question: a second press of the same button changes nothing.
CREATE TABLE survey_answers (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES survey_runs (id),
    survey_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    question_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    value BIGINT,
    option_index BIGINT,
    message_id TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (run_id, question_id)
);
CREATE INDEX survey_answers_survey ON survey_answers (survey_id, created_at);
