-- Who created each webhook subscription and news item (sqlite). Keep in lock-step with
-- postgres/0021_owners.sql.

-- `token:<id>` of the API token that created it; NULL for what an administrator made before
-- owners were recorded, which only administrators then manage.
ALTER TABLE webhooks ADD COLUMN created_by TEXT;
ALTER TABLE news ADD COLUMN created_by TEXT;

-- A subscription made earlier through the API keeps its creator, read from the audit log,
-- when the token name there names exactly one token.
UPDATE webhooks SET created_by = (
    SELECT CASE WHEN COUNT(DISTINCT t.id) = 1 THEN 'token:' || MIN(t.id) END
    FROM audit_log a JOIN api_tokens t ON a.actor = 'token:' || t.name
    WHERE a.action = 'webhook.create' AND a.target = webhooks.id
);
