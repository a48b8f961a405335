-- Complexity: LOW
-- Estimated Duration: 1 second
CREATE TABLE nchat.nchat_message_bookmarks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES nchat.nchat_users (id) ON DELETE CASCADE,
    message_id  bigint NOT NULL REFERENCES nchat.nchat_messages (id) ON DELETE CASCADE,
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_bookmark UNIQUE (user_id, message_id)
);

CREATE INDEX idx_bookmarks_message ON nchat.nchat_message_bookmarks (message_id);

CREATE FUNCTION nchat.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER trg_bookmarks_touch
    BEFORE UPDATE ON nchat.nchat_message_bookmarks
    FOR EACH ROW EXECUTE FUNCTION nchat.touch_updated_at();

CREATE VIEW nchat.bookmarked_messages AS
    SELECT b.user_id, m.id AS message_id, m.body, b.note, b.created_at
    FROM nchat.nchat_message_bookmarks b
    JOIN nchat.nchat_messages m ON m.id = b.message_id;

COMMENT ON TABLE nchat.nchat_message_bookmarks IS 'Messages a user saved for later';
