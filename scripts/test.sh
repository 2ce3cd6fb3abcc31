#!/usr/bin/env bash
# Runs every test of gridloop: formatting, lints, unit, property and integration tests on
# both stores (the embedded SQLite and a throwaway PostgreSQL server), and the browser tests.
# Installs what the tests need on a fresh machine first.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings

# A PostgreSQL server of our own for this run only: initdb in a temporary folder, a free
# loopback port, stopped and removed on exit (scripts/pg.sh installs PostgreSQL if missing).
pg_dir=/tmp/gridloop-test-pg-$$
pg_url=$(./scripts/pg.sh start "$pg_dir")
trap './scripts/pg.sh stop "$pg_dir" >/dev/null 2>&1 || true' EXIT
echo "== PostgreSQL for the tests at $pg_url"

echo "== tests (SQLite)"
env -u GRIDLOOP_TEST_DATABASE_URL cargo test --workspace --exclude gridloop-store-postgres
echo "== tests of the PostgreSQL store"
GRIDLOOP_TEST_DATABASE_URL=$pg_url cargo test -p gridloop-store-postgres
echo "== integration tests again, on PostgreSQL"
GRIDLOOP_TEST_DATABASE_URL=$pg_url cargo test -p gridloop --test '*'

# The benchmark harness, small, so that it cannot rot (docs/performance.md); timings are
# printed, not checked. On SQLite the whole round; on PostgreSQL seeding and the sweep.
echo "== benchmark harness, small"
bench_dir=$(mktemp -d)
cargo run -q -- bench seed --cases 10000 --streets 20 --data "$bench_dir"
cargo run -q -- bench load --data "$bench_dir" --streets 20 --clients 1,4 --seconds 1
cargo run -q -- bench sweep --data "$bench_dir" --passes 2
psql "$pg_url" -q -c "CREATE DATABASE gridloop_bench"
bench_pg=${pg_url%/postgres}/gridloop_bench
cargo run -q -- bench seed --cases 2000 --streets 5 --data "$bench_dir/pg" --database-url "$bench_pg"
cargo run -q -- bench sweep --data "$bench_dir/pg" --database-url "$bench_pg" --passes 2
rm -rf "$bench_dir"

./scripts/e2e.sh
