#!/usr/bin/env bash
# Regenerate the built-in function volatility lists the linter embeds
# (crates/sql/src/data/*.txt) from a live PostgreSQL with the common contrib extensions.
# Usage: PGHOST=/path/to/socket PGUSER=postgres scripts/gen-function-volatility.sh
set -euo pipefail
out=$(dirname "$0")/../crates/sql/src/data
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION IF NOT EXISTS pgcrypto; CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE EXTENSION IF NOT EXISTS ltree;
CREATE EXTENSION IF NOT EXISTS citext; CREATE EXTENSION IF NOT EXISTS hstore;
SQL
# A name is volatile when any overload is: the conservative choice for "does this default rewrite?"
psql -X -tA -c "SELECT proname FROM pg_proc GROUP BY proname HAVING bool_or(provolatile = 'v') ORDER BY 1" > "$out/volatile_functions.txt"
psql -X -tA -c "SELECT proname FROM pg_proc GROUP BY proname HAVING NOT bool_or(provolatile = 'v') ORDER BY 1" > "$out/stable_functions.txt"
wc -l "$out"/*.txt
# Functions in pg_catalog itself (found whatever search_path is; PostgreSQL 17+ runs index
# expressions with search_path = pg_catalog, pg_temp). Generate from the newest server.
psql -X -tA -c "SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace ORDER BY 1" > "$out/catalog_functions.txt"
