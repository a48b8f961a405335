-- Zero-downtime phase 4 (cleanup): drop the old index without blocking queries.
DROP INDEX CONCURRENTLY IF EXISTS nchat.idx_users_legacy_field;
