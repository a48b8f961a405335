-- Step 3: the validated CHECK proves no NULLs, so SET NOT NULL skips the table scan (PostgreSQL 12+).
ALTER TABLE nchat.nchat_users ALTER COLUMN email_verified SET NOT NULL;
ALTER TABLE nchat.nchat_users DROP CONSTRAINT users_email_verified_not_null;
