#!/usr/bin/env bash
# One node on PostgreSQL + Redis against one node on SQLite, same load, one run.
#
# Starts `ipintel serve` on 127.0.0.1 twice per round, in turn: once on a
# throwaway SQLite file, once on a throwaway schema of the local PostgreSQL
# server with quotas shared through the local Redis server (a key prefix of
# its own). Each start gets the same three bounded wrk loads, the same
# seeded public addresses and the same threads and connections:
#
#   paid     GET /v1/ip/{ip}, one key whose limit no run reaches (quota
#            leased from Redis in blocks; SQLite counts in memory)
#   metered  GET /v1/ip/{ip}, spread over $keys keys on the free plan with
#            its limit raised to 1,000 a day (on Redis every lookup of such
#            a key is one atomic round trip; no key runs out in a run)
#   reports  POST /v1/ip/report, spread over the same keys (their report
#            limit raised), a new address each time: every report is one
#            committed transaction, serialized per key, before its 201
#
# Prints each run and, per load, the medians over the rounds and the ratio
# PostgreSQL + Redis / SQLite. PostgreSQL (127.0.0.1:5432, user postgres)
# and Redis (127.0.0.1:6379) must be running; IPINTEL_BENCH_POSTGRES_URL
# and IPINTEL_BENCH_REDIS_URL point elsewhere on this machine.
#
#   scripts/bench_stores.sh [--duration 5s] [--connections 64] [--threads 2] [--rounds 3] [--keys 800]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=5s connections=64 threads=2 rounds=3 keys=800
port=${IPINTEL_LOAD_PORT:-18083}
pg_url=${IPINTEL_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
redis_url=${IPINTEL_BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
done
secs=${duration%s}
# The metered load must not run a key out: at most 1,000 lookups a key.
if [ $((keys * 1000)) -lt $((secs * 150000)) ]; then
  echo "--keys $keys allows $((keys * 1000)) metered lookups; raise it for a ${duration} run" >&2
  exit 64
fi

. scripts/bench_lib.sh
need wrk /usr/bin/wrk
need postgresql-client /usr/bin/psql

scripts/fetch_data.py
scripts/build_web.sh
profile=${IPINTEL_BENCH_PROFILE:-release}
cargo build --profile "$profile" --locked -p ipintel
bin=${CARGO_TARGET_DIR:-target}/$profile/ipintel

work=$(mktemp -d)
server_pid=
schemas=()
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  for schema in "${schemas[@]}"; do
    psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

psql -q "$pg_url" -c "SELECT 1" >/dev/null ||
  { echo "PostgreSQL at $pg_url does not answer" >&2; exit 1; }

python3 scripts/random_addrs.py "$work/addrs.lua" "" 200000

# wrk scripts: $1 is "paid", "metered" or "reports"; keys in $work/keys.lua.
lua() {
  cat <<LUA
dofile("$work/addrs.lua")
dofile("$work/keys.lua")
local i = 0
local kind = "$1"
local threads = 0
setup = function(thread)
  thread:set("index", threads)
  threads = threads + 1
end
init = function(args)
  -- Each thread takes its own slice of the addresses, so no report repeats.
  i = (index or 0) * 100000
end
request = function()
  i = i % #addrs + 1
  if kind == "paid" then
    return wrk.format("GET", "/v1/ip/" .. addrs[i], { ["X-API-Key"] = paid })
  elseif kind == "metered" then
    return wrk.format("GET", "/v1/ip/" .. addrs[i], { ["X-API-Key"] = metered[i % #metered + 1] })
  end
  -- Multicast addresses are looked up but cannot be reported.
  while (tonumber(addrs[i]:match("^(%d+)%.") or 0)) >= 224 do
    i = i % #addrs + 1
  end
  return wrk.format("POST", "/v1/ip/report",
    { ["X-API-Key"] = metered[i % #metered + 1],
      ["Content-Type"] = "application/x-www-form-urlencoded" },
    "category=18&ip=" .. addrs[i])
end
if kind == "reports" then
  -- The first refusal of each thread is shown, so a failing run says why.
  local shown = false
  response = function(status, headers, body)
    if status >= 300 and not shown then
      shown = true
      io.stderr:write("reports: " .. status .. " " .. body .. "\n")
    end
  end
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("%.0f %.3f %d %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000,
    summary.requests, errors, summary.errors.status))
end
LUA
}
for kind in paid metered reports; do lua "$kind" >"$work/$kind.lua"; done

# Starts a node on store $1 ("sqlite" or "postgres") for round $2, creates
# its keys, and waits until it is ready.
start() {
  local store=$1 round=$2
  local -a env=(
    IPINTEL_PLAN_FREE_DAILY=1000
    IPINTEL_PLAN_FREE_REPORTS_DAILY=100000000
    IPINTEL_DATA_REFRESH_SECS=0
    IPINTEL_KEYS_PER_HOUR_PER_CLIENT=1000000
    RUST_LOG=warn
  )
  if [ "$store" = sqlite ]; then
    env+=(IPINTEL_DB="$work/round$round.db")
  else
    local schema="ipintel_bench_stores_$$_$round"
    schemas+=("$schema")
    psql -q "$pg_url" -c "CREATE SCHEMA $schema" >/dev/null
    local sep='?'
    case "$pg_url" in *\?*) sep='&' ;; esac
    env+=(
      IPINTEL_DB="$pg_url${sep}options=-c%20search_path%3D$schema"
      IPINTEL_REDIS_URL="$redis_url"
      IPINTEL_REDIS_PREFIX="ipintel-bench-$$-$round:"
    )
  fi
  local paid
  paid=$(env "${env[@]}" "$bin" keys create --label paid --plan enterprise --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
  env "${env[@]}" "$bin" serve --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_ready "$port" "$server_pid" "$work/server.log"
  # The metered keys come from POST /v1/keys (free plan), as users get them.
  python3 - "$port" "$keys" "$paid" >"$work/keys.lua" <<'PY'
import json
import sys
import urllib.request

port, count, paid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
metered = []
for _ in range(count):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/keys", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        metered.append(json.load(answer)["key"])
print(f'paid = "{paid}"')
print("metered = {" + ",".join(f'"{key}"' for key in metered) + "}")
PY
}

stop() {
  kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  server_pid=
  if grep -q '"level":"ERROR"' "$work/server.log"; then
    echo "the server logged errors:" >&2
    grep '"level":"ERROR"' "$work/server.log" | head -5 >&2
  fi
}

echo "wrk -t$threads -c$connections -d$duration per load, $keys metered keys, $rounds rounds in turn" >&2
printf '%-5s %-18s %-8s %9s %9s %10s %7s %7s\n' round store load req/s p99_ms requests errors non2xx
results=$work/results
for round in $(seq 1 "$rounds"); do
  for store in sqlite postgres; do
    start "$store" "$round"
    # A short warm-up loads the keys and fills the caches.
    timeout 60 wrk -t1 -c4 -d1s -s "$work/paid.lua" "http://127.0.0.1:$port" >/dev/null
    for kind in paid metered reports; do
      line=$(timeout 300 wrk -t"$threads" -c"$connections" -d"$duration" -s "$work/$kind.lua" \
        "http://127.0.0.1:$port" | tail -n 1)
      label=$([ "$store" = sqlite ] && echo "SQLite" || echo "PostgreSQL+Redis")
      read -r rps p99 n errors non2xx <<<"$line"
      printf '%-5s %-18s %-8s %9s %9s %10s %7s %7s\n' "$round" "$label" "$kind" "$rps" "$p99" "$n" "$errors" "$non2xx"
      echo "$store $kind $rps $p99 $errors" >>"$results"
    done
    stop
  done
done

python3 - "$results" <<'PY'
import statistics
import sys

runs = {}
errors = 0
for line in open(sys.argv[1]):
    store, kind, rps, p99, errs = line.split()
    runs.setdefault((store, kind), []).append((float(rps), float(p99)))
    errors += int(errs)
for kind in ("paid", "metered", "reports"):
    lite = runs[("sqlite", kind)]
    pg = runs[("postgres", kind)]
    lite_rps = statistics.median(r for r, _ in lite)
    pg_rps = statistics.median(r for r, _ in pg)
    lite_p99 = statistics.median(p for _, p in lite)
    pg_p99 = statistics.median(p for _, p in pg)
    print(f"{kind:8} SQLite {lite_rps:8.0f} req/s p99 {lite_p99:6.2f} ms | "
          f"PostgreSQL+Redis {pg_rps:8.0f} req/s p99 {pg_p99:6.2f} ms | "
          f"throughput ratio {pg_rps / lite_rps:.2f}, p99 ratio {pg_p99 / lite_p99:.2f}")
print(f"errors (connect, read, write, status, timeout) in all runs: {errors}")
PY
