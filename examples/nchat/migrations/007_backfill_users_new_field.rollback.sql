-- migsafe:no-transaction
-- Rollback for 007_backfill_users_new_field.sql (hand-written): undo the backfill in batches, as it was done.
-- Before the backfill new_field held NULL in every row (the column(s) were added empty).
DO $$
DECLARE
    lo bigint;
    hi bigint;
BEGIN
    SELECT min(id), max(id) INTO lo, hi FROM nchat.nchat_users;
    WHILE lo IS NOT NULL AND lo <= hi LOOP
        UPDATE nchat.nchat_users
           SET new_field = NULL
         WHERE (new_field IS NOT NULL)
           AND id >= lo AND id < lo + 5000;
        COMMIT;
        lo := lo + 5000;
    END LOOP;
END
$$;
