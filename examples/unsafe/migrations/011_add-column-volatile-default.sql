ALTER TABLE users ADD COLUMN api_token uuid DEFAULT gen_random_uuid();
