-- The view keeps comparing against the moment this migration ran: 'now' is a literal that
-- PostgreSQL turns into a fixed timestamp when the view is created.
CREATE VIEW recent_messages AS
    SELECT id, user_id, body FROM messages WHERE created_at > 'now'::timestamptz - interval '1 day';
