-- migsafe:no-transaction
-- Rollback for 019_backfill_first_last_name.sql (hand-written): undo the backfill in batches, as it was done.
-- Before the backfill first_name, last_name held NULL in every row (the column(s) were added empty).
DO $$
DECLARE
    lo bigint;
    hi bigint;
BEGIN
    SELECT min(id), max(id) INTO lo, hi FROM nchat.nchat_users;
    WHILE lo IS NOT NULL AND lo <= hi LOOP
        UPDATE nchat.nchat_users
           SET first_name = NULL, last_name = NULL
         WHERE (first_name IS NOT NULL OR last_name IS NOT NULL)
           AND id >= lo AND id < lo + 5000;
        COMMIT;
        lo := lo + 5000;
    END LOOP;
END
$$;
