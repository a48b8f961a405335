-- The partial index calls a SQL function whose body calls lower_trim() without its schema:
-- PostgreSQL 17 builds indexes with search_path = pg_catalog, pg_temp, and fails here (on 15
-- it builds, and the next REINDEX or pg_restore after an upgrade to 17 fails instead).
CREATE FUNCTION lower_trim(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(trim(t)) $$;
CREATE FUNCTION has_real_email(e text) RETURNS boolean LANGUAGE sql IMMUTABLE
    AS $$ SELECT lower_trim(e) <> '' $$;
CREATE TABLE contacts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);
CREATE INDEX contacts_real_email ON contacts (id) WHERE has_real_email(email);
