DROP INDEX idx_messages_user;
