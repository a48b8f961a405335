-- The guide's "adding a foreign key", phase 1: NOT VALID (existing rows are not checked).
ALTER TABLE nchat.nchat_messages
    ADD CONSTRAINT fk_messages_reply_to FOREIGN KEY (reply_to_id)
    REFERENCES nchat.nchat_messages (id) ON DELETE SET NULL
    NOT VALID;
