-- Step 2: validate in its own migration: SHARE UPDATE EXCLUSIVE only, reads and writes continue.
ALTER TABLE nchat.nchat_users VALIDATE CONSTRAINT users_email_verified_not_null;
