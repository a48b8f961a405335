ALTER TABLE users ADD COLUMN avatar_url text;
CREATE INDEX CONCURRENTLY idx_users_avatar ON users (avatar_url);
