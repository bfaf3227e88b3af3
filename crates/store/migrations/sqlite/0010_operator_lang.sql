-- The UI language an operator chose, kept with the account (sqlite).
-- Keep in lock-step with postgres/0010_operator_lang.sql.
ALTER TABLE operators ADD COLUMN lang TEXT;
