-- The full_name split, phase 1: new nullable columns.
ALTER TABLE nchat.nchat_users ADD COLUMN first_name TEXT NULL;
ALTER TABLE nchat.nchat_users ADD COLUMN last_name TEXT NULL;
