# Shell functions the load and benchmark scripts share; source it.

# Installs Debian package $1 unless file $2 exists.
need() {
  local package=$1 file=$2
  [ -e "$file" ] && return
  echo "installing $package from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$package" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "$package" >/dev/null; }
}

# Creates a key labelled $2 whose daily limit no benchmark reaches with
# binary $1 (on the database IPINTEL_DB names) and prints it.
unlimited_key() {
  "$1" keys create --label "$2" --daily-limit 1000000000000 --json 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])'
}

# Waits up to 150 s until the server on port $1 is ready; exits with its
# log $3 if process $2 dies first.
wait_ready() {
  local port=$1 pid=$2 log=$3
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.5
  done
}
