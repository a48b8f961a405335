-- Zero-downtime phase 1 (additive): a nullable column, no rewrite, brief lock only.
-- Complexity: LOW
ALTER TABLE nchat.nchat_users ADD COLUMN new_field TEXT NULL;
