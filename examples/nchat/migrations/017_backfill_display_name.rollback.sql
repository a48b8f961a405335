-- migsafe:no-transaction
-- Rollback for 017_backfill_display_name.sql (hand-written): undo the backfill in batches, as it was done.
-- Before the backfill display_name held NULL in every row (the column(s) were added empty).
DO $$
DECLARE
    lo bigint;
    hi bigint;
BEGIN
    SELECT min(id), max(id) INTO lo, hi FROM nchat.nchat_users;
    WHILE lo IS NOT NULL AND lo <= hi LOOP
        UPDATE nchat.nchat_users
           SET display_name = NULL
         WHERE (display_name IS NOT NULL)
           AND id >= lo AND id < lo + 5000;
        COMMIT;
        lo := lo + 5000;
    END LOOP;
END
$$;
