#!/usr/bin/env bash
# Throughput of GET /v1/ip/{ip} while the data reloads, against steady state.
#
# Starts `ipintel serve` on 127.0.0.1 with a throwaway database, an admin
# token, a key whose daily limit cannot be reached and a copy of the
# packaged sources file (so that touching it makes a reload rebuild the
# snapshot), the refresh timer off and RUST_LOG=warn. Then, for several
# rounds: a steady-state wrk run, and a wrk run of the same length with a
# forced reload (`POST /v1/admin/reload` after touching the sources file)
# started right at its beginning. wrk (from Debian's packages, installed if
# missing) shares the cores with the server, and uses the same seeded
# random public addresses as the other load scripts. A reload that outlasts
# its wrk run is waited for before the next round. Prints each round, the
# medians, the ratio reload/steady (target >= 0.90; also the median of the
# rounds' own ratios, which other load on the machine sways less), each
# reload's duration as the reload endpoint reports it (and whether it was
# still running when wrk ended), the reload thread's scheduling policy, and
# the server's steady and peak memory (VmRSS, VmHWM). Expects no errors and
# no non-2xx answer.
#
#   scripts/bench_reload.sh [--duration 10s] [--connections 64] [--threads 2] [--rounds 3]
#
# IPINTEL_BENCH_PROFILE picks the cargo profile (default release; `ci`
# reuses the test build); CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10s connections=64 threads=2 rounds=3 port=${IPINTEL_LOAD_PORT:-18082}
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
done

. scripts/bench_lib.sh
need wrk /usr/bin/wrk

scripts/fetch_data.py
scripts/build_web.sh
profile=${IPINTEL_BENCH_PROFILE:-release}
cargo build --profile "$profile" --locked -p ipintel
bin=${CARGO_TARGET_DIR:-target}/$profile/ipintel

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# --- the server --------------------------------------------------------
export IPINTEL_DB="$work/load.db"
key=$(unlimited_key "$bin" reload-bench)
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
cp config/sources.toml "$work/sources.toml"
# The snapshot cache is off: each forced reload must rebuild, not read it.
IPINTEL_SNAPSHOT_CACHE=off IPINTEL_SOURCES="$work/sources.toml" IPINTEL_ADMIN_TOKEN="$token" \
  IPINTEL_DATA_REFRESH_SECS=0 \
  RUST_LOG=warn "$bin" serve --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
wait_ready "$port" "$server_pid" "$work/server.log"

python3 scripts/random_addrs.py "$work/addrs.lua" "$key"
cat >"$work/load.lua" <<LUA
dofile("$work/addrs.lua")
local i = 0
request = function()
  i = i % #addrs + 1
  return wrk.format("GET", "/v1/ip/" .. addrs[i], { ["X-API-Key"] = key })
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  io.write(string.format("%.0f %.3f %d %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000,
    summary.requests, errors, summary.errors.status))
end
LUA

# One bounded wrk run: "req/s p99_ms requests errors non2xx".
load() {
  timeout 300 wrk -t"$threads" -c"$connections" -d"$duration" -s "$work/load.lua" \
    "http://127.0.0.1:$port" | tail -n 1
}
status_kb() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$server_pid/status"; }

# The policy and nice value of the server's reload thread, while one runs.
reload_thread() {
  local task
  for task in /proc/"$server_pid"/task/*; do
    [ "$(cat "$task/comm" 2>/dev/null)" = ipintel-reload ] || continue
    python3 - "$task/stat" <<'PY'
import sys
fields = open(sys.argv[1]).read().rsplit(")", 1)[1].split()
policies = {"0": "SCHED_OTHER", "3": "SCHED_BATCH", "5": "SCHED_IDLE"}
print(f"{policies.get(fields[38], 'policy ' + fields[38])}, nice {fields[16]}")
PY
    return
  done
}

# A forced reload: the sources file changes, so the snapshot is rebuilt.
# Writes the endpoint's answer to $1 and, when it ends, the file $1.done.
reload() {
  touch "$work/sources.toml"
  curl -sS --max-time 600 -X POST -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/v1/admin/reload" >"$1" 2>&1
  touch "$1.done"
}

echo "wrk -t$threads -c$connections -d$duration against 127.0.0.1:$port on $(nproc) cores" \
  "shared with the server; a 3 s warm-up first; $rounds rounds" >&2
timeout 60 wrk -t"$threads" -c"$connections" -d3s -s "$work/load.lua" \
  "http://127.0.0.1:$port" >/dev/null
steady_rss=$(status_kb VmRSS)

row() { printf '%-5s %-7s %10s %7s %9s %10s %7s %7s %10s %-9s %s\n' "$@"; }
row round run req/s ratio p99_ms requests errors non2xx reload_ms outcome "after wrk"
results=$work/results
for round in $(seq 1 "$rounds"); do
  read -r rps p99 n err non2xx < <(load)
  row "$round" steady "$rps" - "$p99" "$n" "$err" "$non2xx" - - -
  echo "steady $rps $err $non2xx" >>"$results"
  steady_rps=$rps

  answer=$work/reload-$round.json
  load >"$work/wrk-$round.txt" &
  wrk_pid=$!
  sleep 0.2 # wrk has opened its connections
  reload "$answer" &
  reload_pid=$!
  sleep 1
  policy=$(reload_thread)
  [ -n "$policy" ] && echo "$policy" >"$work/policy"
  wait "$wrk_pid"
  overlap=finished
  [ -e "$answer.done" ] || overlap="STILL RUNNING"
  wait "$reload_pid"
  read -r rps p99 n err non2xx <"$work/wrk-$round.txt"
  read -r outcome ms < <(python3 - "$answer" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
try:
    report = json.loads(text)
    print(report["outcome"], report["duration_ms"])
except (ValueError, KeyError):
    print("error", "-")
    print(text, file=sys.stderr)
PY
)
  ratio=$(awk -v r="$rps" -v s="$steady_rps" 'BEGIN { printf "%.2f", r / s }')
  row "$round" reload "$rps" "$ratio" "$p99" "$n" "$err" "$non2xx" "$ms" "$outcome" "$overlap"
  echo "reload $rps $err $non2xx $ms $outcome $overlap" >>"$results"
  sleep 1 # the reload thread frees the replaced snapshot
done

python3 - "$results" "$steady_rss" "$(status_kb VmRSS)" "$(status_kb VmHWM)" \
  "$(cat "$work/policy" 2>/dev/null || echo 'not seen')" <<'PY'
import statistics
import sys

steady, reloads = [], []
for line in open(sys.argv[1]):
    run, rps, err, non2xx, *rest = line.split()
    (steady if run == "steady" else reloads).append((float(rps), int(err), int(non2xx), rest))
s = statistics.median(r[0] for r in steady)
r = statistics.median(r[0] for r in reloads)
paired = statistics.median(b[0] / a[0] for a, b in zip(steady, reloads))
durations = [x[3][0] for x in reloads]
outcomes = sorted({x[3][1] for x in reloads})
overlaps = sum(1 for x in reloads if x[3][2] != "finished")
errors = sum(x[1] for x in steady + reloads)
non2xx = sum(x[2] for x in steady + reloads)
steady_rss, rss, hwm = (int(v) / 1024 for v in sys.argv[2:5])
print(f"median steady: {s:.0f} req/s")
print(f"median during a reload: {r:.0f} req/s")
print(f"ratio reload/steady: {r / s:.2f} (target >= 0.90);"
      f" median of the rounds' ratios: {paired:.2f}")
print(f"reload durations (ms, from the reload answer): {' '.join(durations)};"
      f" outcomes: {', '.join(outcomes)}; still running when wrk ended: {overlaps} of {len(reloads)}")
print(f"reload thread: {sys.argv[5]}")
print(f"server memory: steady RSS {steady_rss:.0f} MiB, RSS at the end {rss:.0f} MiB,"
      f" peak (VmHWM) {hwm:.0f} MiB")
print(f"errors (connect, read, write, timeout): {errors}; non-2xx answers: {non2xx}")
PY
