-- PostgreSQL 18: a foreign key added NOT ENFORCED (instant, unchecked) is later switched to
-- ENFORCED. That one statement checks every row of messages against users while holding an
-- ACCESS EXCLUSIVE lock on messages: reads and writes wait for the whole scan.
ALTER TABLE messages ALTER CONSTRAINT messages_user_fk ENFORCED;
