-- Rollback for 001_create_schema_and_users.sql (hand-written)
DROP TABLE nchat.nchat_users;
DROP SCHEMA nchat;
