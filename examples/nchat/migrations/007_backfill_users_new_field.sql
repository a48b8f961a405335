-- migsafe:no-transaction
-- Zero-downtime phase 2: backfill in batches of 5000, each committed on its own, under an
-- advisory lock so two runs cannot overlap. (For very large tables prefer `migsafe backfill`.)
-- Complexity: MEDIUM
DO $$
DECLARE
    lo bigint;
    hi bigint;
BEGIN
    PERFORM pg_advisory_lock(123456);
    SELECT min(id), max(id) INTO lo, hi FROM nchat.nchat_users;
    WHILE lo IS NOT NULL AND lo <= hi LOOP
        UPDATE nchat.nchat_users
           SET new_field = legacy_field
         WHERE new_field IS NULL
           AND id >= lo AND id < lo + 5000;
        COMMIT;
        lo := lo + 5000;
    END LOOP;
    PERFORM pg_advisory_unlock(123456);
END
$$;
