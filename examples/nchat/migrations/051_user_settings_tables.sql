-- Complexity: LOW
CREATE TABLE nchat.nchat_user_settings (
    user_id     bigint NOT NULL REFERENCES nchat.nchat_users (id) ON DELETE CASCADE,
    key         text NOT NULL,
    value       jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Safe: nullable with default (the guide's example)
ALTER TABLE nchat.nchat_users ADD COLUMN feature_enabled BOOLEAN NULL DEFAULT false;
