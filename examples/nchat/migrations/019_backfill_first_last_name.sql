-- migsafe:no-transaction
-- The full_name split, phase 2: backfill in batches.
DO $$
DECLARE
    lo bigint;
    hi bigint;
BEGIN
    SELECT min(id), max(id) INTO lo, hi FROM nchat.nchat_users;
    WHILE lo IS NOT NULL AND lo <= hi LOOP
        UPDATE nchat.nchat_users
           SET first_name = split_part(full_name, ' ', 1),
               last_name  = split_part(full_name, ' ', 2)
         WHERE first_name IS NULL
           AND id >= lo AND id < lo + 5000;
        COMMIT;
        lo := lo + 5000;
    END LOOP;
END
$$;
