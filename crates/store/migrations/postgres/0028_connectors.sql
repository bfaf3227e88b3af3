-- Connectors to business systems: amoCRM, Bitrix24, 1C (postgres).
-- Keep in lock-step with sqlite/0028_connectors.sql.

-- Like a channel: a kind, a name, a configuration whose secrets are sealed (the token, the
-- secret in the address the business system posts to), what the system says of itself
-- (`info`) and a status a refused token or a blocked account shows on.
CREATE TABLE connectors (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'active',
    status_detail TEXT,
    deleted BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
