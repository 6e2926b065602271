#!/usr/bin/env bash
# The demo: builds the example modules into one binary and shows what it holds.
# (The full pipeline demo — throwaway slapd, notifier, listener, scripted changes — comes
# with the notifier and listener; see the README's status section.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --locked -q -p examples --bin demo-listener
exec target/debug/demo-listener modules
