#!/usr/bin/env bash
# Load test of GET /v1/ip/{ip} over HTTP on loopback, with a valid key.
#
# Builds the release binary, starts `ipintel serve` on 127.0.0.1 with a
# throwaway database and a key whose daily limit cannot be reached, then runs
# wrk (installed from Debian's packages if missing) for a bounded time against
# a fixed, seeded set of random public addresses (80 % IPv4, 20 % IPv6), and
# prints requests per second and latency percentiles.
#
#   scripts/load.sh [--duration 10s] [--connections 64] [--threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10s connections=64 threads=2 port=${IPINTEL_LOAD_PORT:-18080}
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
done

. scripts/bench_lib.sh
need wrk /usr/bin/wrk

scripts/fetch_data.py
cargo build --release --locked -p ipintel
bin=${CARGO_TARGET_DIR:-target}/release/ipintel

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

export IPINTEL_DB="$work/load.db"
key=$(unlimited_key "$bin" load-test)

"$bin" serve --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
wait_ready "$port" "$server_pid" "$work/server.log"

python3 scripts/random_addrs.py "$work/addrs.lua" "$key"

cat > "$work/load.lua" <<LUA
dofile("$work/addrs.lua")
local i = 0
request = function()
  i = i % #addrs + 1
  return wrk.format("GET", "/v1/ip/" .. addrs[i], { ["X-API-Key"] = key })
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("requests=%d errors=%d non2xx=%d rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests, errors, summary.errors.status, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
LUA

echo "wrk -t$threads -c$connections -d$duration against 127.0.0.1:$port" >&2
timeout 300 wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$work/load.lua" \
  "http://127.0.0.1:$port" | tail -n 1
