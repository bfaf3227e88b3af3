-- What became of an event, in enough detail to explain it (sqlite).
-- Keep in lock-step with postgres/0016_event_outcomes.sql.

-- What each rule (or event-started survey, `survey:<id>`) made of an event: `matched`,
-- `not_matched` (its condition was false; `detail` holds the condition), `condition_error`
-- (`detail` holds the error), `scheduled` (runs at `run_at`; `matched` once it ran) or
-- `invalid` (the stored rule no longer parses). The name is kept as it was, so a renamed or
-- deleted rule still reads right on an old event.
CREATE TABLE event_rules (
    event_id TEXT NOT NULL REFERENCES events (id),
    rule_id TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    run_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (event_id, rule_id)
);

-- Why a recipient was not reached, as a stable code the operator window explains
-- (`unknown_external_id`, `no_identity`, `blocked`, …); the recipient as the rule named it
-- once rendered (an external id, a phone, a group); the contact, when one was found.
ALTER TABLE event_unresolved ADD COLUMN code TEXT;
ALTER TABLE event_unresolved ADD COLUMN value TEXT;
ALTER TABLE event_unresolved ADD COLUMN contact_id TEXT;

-- Why no message could be made for a person (`template_failed`, `attachment_failed`).
ALTER TABLE event_deliveries ADD COLUMN code TEXT;
