ALTER TABLE nchat.nchat_messages ADD COLUMN reply_to_id bigint NULL;
