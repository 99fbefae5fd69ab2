#!/usr/bin/env bash
# Fetch the open datasets if they are missing, build the web interface if
# it is stale, then run the service on 127.0.0.1 (port 8080 unless
# IPINTEL_BIND says otherwise): the portal is at /, the dashboard at
# /dashboard.
#
#   scripts/serve.sh [extra `ipintel serve` flags]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch_data.py
scripts/build_web.sh
exec cargo run --release --locked -p ipintel -- serve "$@"
