-- The guide's "adding a column" example, phase 1: nullable with a constant default
-- (instant since PostgreSQL 11: no rewrite).
ALTER TABLE nchat.nchat_users ADD COLUMN email_verified BOOLEAN NULL DEFAULT false;
