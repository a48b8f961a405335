ALTER TABLE sessions ADD COLUMN seq bigserial;
