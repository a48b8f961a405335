#!/usr/bin/env bash
# `make test`'s test run: every test on PostgreSQL 15, and the database suites again on
# PostgreSQL 18 (fetched into a cache on first use), both at once. The database suites spend much
# of their time waiting on their servers (initdb, start, stop), so on two cores the two runs
# overlap instead of taking turns; each starts its own throwaway clusters, so they share nothing.
# The PostgreSQL 18 run's output follows the PostgreSQL 15 run's; either failing fails the whole.
set -uo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
pg18=$(scripts/fetch-pg.sh 18) || exit 1
# Built once, before the two runs share the build.
$CARGO test --workspace --no-run || exit 1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
MIGSAFE_TEST_PG_BIN="$pg18" $CARGO test --workspace --test 'db_*' >"$log" 2>&1 &
pid=$!
$CARGO test --workspace
pg15=$?
wait "$pid"
pg18rc=$?
echo
echo "=== the database suites on PostgreSQL 18 ($pg18) ==="
cat "$log"
echo "PostgreSQL 15: exit $pg15; PostgreSQL 18: exit $pg18rc"
[ "$pg15" -eq 0 ] && [ "$pg18rc" -eq 0 ]
