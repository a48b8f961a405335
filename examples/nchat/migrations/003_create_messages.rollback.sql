-- Rollback for 003_create_messages.sql (hand-written)
DROP VIEW nchat.recent_messages;
DROP TABLE nchat.nchat_messages;
