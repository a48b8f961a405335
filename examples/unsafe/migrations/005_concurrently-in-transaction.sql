BEGIN;
CREATE INDEX CONCURRENTLY idx_messages_body ON messages (body);
COMMIT;
