CREATE INDEX CONCURRENTLY idx_messages_reply_to ON nchat.nchat_messages (reply_to_id)
    WHERE reply_to_id IS NOT NULL;
