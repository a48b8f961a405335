-- The tables every later migration in this folder changes. Each later file shows one hazard,
-- named after the lint rule that catches it.
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL,
    full_name   text,
    age         int,
    legacy      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_messages_user ON messages (user_id);
CREATE TABLE sessions (id bigint PRIMARY KEY, user_id bigint, expires_at timestamptz);
CREATE TABLE events (id bigint NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE bookings (room int NOT NULL, during tstzrange NOT NULL);
CREATE MATERIALIZED VIEW message_stats AS SELECT user_id, count(*) AS n FROM messages GROUP BY user_id;
CREATE DOMAIN email_address AS text;
CREATE SCHEMA reporting;
CREATE TABLE reporting.daily (d date PRIMARY KEY, n bigint);
