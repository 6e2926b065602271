#!/usr/bin/env bash
# The demo: starts a throwaway slapd (accesslog + syncprov), the notifier and a listener
# with the example modules, makes a scripted set of changes (create, modify, rename, move,
# delete users and groups), shows each module call as it happens, and stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --locked -q -p tests --bin demo
exec target/debug/demo
