#!/usr/bin/env bash
# Run every test of the workspace, including the integration tests on the
# real datasets (fetched first if they are missing).
#
#   scripts/test.sh [extra `cargo test` arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch_data.py
# The MaxMind format's public test corpus (good and corrupt databases) ships
# in the shared folder beside the repository; the tests that need it say so
# when it is absent.
if [ -z "${IPINTEL_SHARED_DIR:-}" ] && [ -d ../shared/data/maxmind-db-test-data ]; then
  IPINTEL_SHARED_DIR=$(cd ../shared/data && pwd)
  export IPINTEL_SHARED_DIR
fi
cargo test --workspace --profile ci --locked "$@"
