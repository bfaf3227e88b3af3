-- Operators who sign in through an LDAP directory or Active Directory (sqlite).
-- Keep in lock-step with postgres/0024_directory_operators.sql.

-- The directory entry (DN) of an operator who signs in through the directory; NULL for a local
-- account with a password of its own. Such an operator's password is never checked by okno: the
-- directory proves it at every sign-in, and the stored hash is of a random secret nobody knows.
ALTER TABLE operators ADD COLUMN directory_dn TEXT;

-- 1 when okno disabled the account because the directory no longer lets the person in (the entry
-- gone or disabled, or in no mapped group): a later sign-in the directory accepts enables it
-- again. An account an administrator disabled in okno (0 here) stays disabled.
ALTER TABLE operators ADD COLUMN directory_disabled INTEGER NOT NULL DEFAULT 0;
