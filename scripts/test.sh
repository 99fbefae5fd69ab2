#!/usr/bin/env bash
# Run every test of the workspace, including the integration tests on the
# real datasets (fetched first if they are missing).
#
#   scripts/test.sh [extra `cargo test` arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch_data.py
cargo test --workspace --release --locked "$@"
