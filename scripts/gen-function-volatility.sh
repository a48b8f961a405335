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
