-- Zero-downtime phase 4 (cleanup), after the application stopped using these columns.
-- Complexity: HIGH
-- migsafe:ignore drop-column v2.1 reads display_name/first_name/last_name; full_name unused since
ALTER TABLE nchat.nchat_users DROP COLUMN full_name;
-- migsafe:ignore drop-column new_field replaced legacy_field in v2.0
ALTER TABLE nchat.nchat_users DROP COLUMN legacy_field;
