-- The UI language an operator chose, kept with the account (postgres).
-- Keep in lock-step with sqlite/0010_operator_lang.sql.
ALTER TABLE operators ADD COLUMN lang TEXT;
