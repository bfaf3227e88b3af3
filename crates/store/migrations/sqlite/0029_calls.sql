-- Calls: a company's telephony (a Bitrix24 portal's, a PBX's) in its people's history (sqlite).
-- Keep in lock-step with postgres/0029_calls.sql.

-- One row per call, by where it was reported (a connector) and that system's id for it: a
-- call reported again (at its start, then at its end with the recording) is one row. The
-- person is the contact with the call's number, made when there is none.
CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    direction TEXT NOT NULL,
    status TEXT NOT NULL,
    phone TEXT NOT NULL,
    operator TEXT,
    started_at INTEGER NOT NULL,
    duration INTEGER NOT NULL DEFAULT 0,
    recording_url TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX calls_contact ON calls (contact_id, started_at);

-- A business system's contacts kept in step with okno's: okno's changes are read in the
-- order they were made.
CREATE INDEX contacts_updated ON contacts (updated_at, id);

-- Where a connector's standing work stands in a business system when that is too big for its
-- `info` (a 1C catalog's object versions): one text per connector and key.
CREATE TABLE connector_places (
    connector_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (connector_id, key)
);
