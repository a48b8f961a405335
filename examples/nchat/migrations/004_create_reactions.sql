CREATE TABLE nchat.nchat_reactions (
    message_id  bigint NOT NULL REFERENCES nchat.nchat_messages (id) ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES nchat.nchat_users (id) ON DELETE CASCADE,
    emoji       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, emoji)
);
