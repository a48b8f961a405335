ALTER TABLE users ADD CONSTRAINT users_email_format CHECK (email LIKE '%@%') NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_email_format;
