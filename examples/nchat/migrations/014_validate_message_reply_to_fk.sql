-- Phase 3: validate in a separate migration.
ALTER TABLE nchat.nchat_messages VALIDATE CONSTRAINT fk_messages_reply_to;
