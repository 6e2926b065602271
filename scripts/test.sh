#!/usr/bin/env bash
# Runs every test of the project: installs what is missing, then checks formatting and
# lints, then runs all unit, UI (trybuild), property and integration tests (the latter
# against throwaway slapd and memcached instances).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Internals are pub(crate), so the dead-code lint sees what nothing uses.
cargo clippy -p listener-runtime --locked -- -W unreachable_pub -D dead_code -D warnings
cargo test --workspace --locked
