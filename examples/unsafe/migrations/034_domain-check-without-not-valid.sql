ALTER TABLE users ADD COLUMN contact email_address;
ALTER DOMAIN email_address ADD CONSTRAINT has_at CHECK (VALUE LIKE '%@%');
