ALTER TABLE nchat.nchat_users DROP COLUMN email_verified;
