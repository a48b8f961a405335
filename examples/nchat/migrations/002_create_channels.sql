-- Complexity: LOW
CREATE TYPE nchat.channel_kind AS ENUM ('public', 'private', 'direct');

CREATE TABLE nchat.nchat_channels (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    kind        nchat.channel_kind NOT NULL DEFAULT 'public',
    created_by  bigint NOT NULL REFERENCES nchat.nchat_users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT channel_name_length CHECK (length(name) BETWEEN 1 AND 80)
);

CREATE TABLE nchat.nchat_channel_members (
    channel_id  bigint NOT NULL REFERENCES nchat.nchat_channels (id) ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES nchat.nchat_users (id) ON DELETE CASCADE,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);

CREATE INDEX idx_channel_members_user ON nchat.nchat_channel_members (user_id);
