ALTER TABLE messages ALTER COLUMN user_id TYPE int;
