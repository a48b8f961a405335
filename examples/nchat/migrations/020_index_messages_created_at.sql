-- Use CONCURRENTLY to avoid blocking writes.
CREATE INDEX CONCURRENTLY idx_messages_created_at
    ON nchat.nchat_messages (created_at DESC);
