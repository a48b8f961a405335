-- Complexity: LOW
CREATE TABLE nchat.nchat_messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id  bigint NOT NULL REFERENCES nchat.nchat_channels (id) ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES nchat.nchat_users (id),
    body        text NOT NULL,
    edited      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_messages_channel ON nchat.nchat_messages (channel_id, id);

CREATE VIEW nchat.recent_messages AS
    SELECT m.id, m.channel_id, u.username, m.body, m.created_at
    FROM nchat.nchat_messages m
    JOIN nchat.nchat_users u ON u.id = m.user_id
    WHERE m.created_at > now() - interval '7 days';
