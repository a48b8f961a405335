-- Complexity: LOW
-- Estimated Duration: 1 second
CREATE SCHEMA IF NOT EXISTS nchat;

CREATE TABLE nchat.nchat_users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    email         text NOT NULL,
    full_name     text,
    legacy_field  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_users_legacy_field ON nchat.nchat_users (legacy_field);

COMMENT ON TABLE nchat.nchat_users IS 'Chat accounts';
