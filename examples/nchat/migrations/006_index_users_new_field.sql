-- Zero-downtime phase 1: index built CONCURRENTLY (migsafe runs this file outside a transaction).
CREATE INDEX CONCURRENTLY idx_users_new_field ON nchat.nchat_users (new_field);
