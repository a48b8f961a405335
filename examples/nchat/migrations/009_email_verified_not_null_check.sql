-- Phase 3 of adding a NOT NULL column, step 1: prove it with a CHECK added NOT VALID
-- (brief lock, existing rows are not scanned).
ALTER TABLE nchat.nchat_users
    ADD CONSTRAINT users_email_verified_not_null CHECK (email_verified IS NOT NULL) NOT VALID;
