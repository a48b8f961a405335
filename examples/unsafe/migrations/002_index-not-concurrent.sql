CREATE INDEX idx_messages_created_at ON messages (created_at);
