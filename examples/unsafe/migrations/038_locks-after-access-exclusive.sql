ALTER TABLE users ADD COLUMN plan text;
ALTER TABLE messages ADD COLUMN pinned boolean;
