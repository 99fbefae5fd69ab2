#!/usr/bin/env bash
# Run every test: the workspace's (including the integration tests on the
# real datasets, fetched first if they are missing), then the web
# interface's end-to-end tests in headless Chromium against the real binary.
#
#   scripts/test.sh [extra `cargo test` arguments]
#
# IPINTEL_SKIP_E2E=1 leaves the browser tests out (CI runs them).
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Debian package $1, which provides $2, as root; otherwise stops.
install_package() {
  local package=$1 what=$2
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: $what is missing; install Debian's $package package (as root)" >&2
    exit 1
  fi
  echo "test.sh: installing $package from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$package" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "$package" >/dev/null; }
}

scripts/fetch_data.py
# The export test reads the exported database back with Debian's
# mmdblookup (package mmdb-bin).
command -v mmdblookup >/dev/null || install_package mmdb-bin mmdblookup
# The cluster test (crates/ipintel/tests/cluster.rs) puts two nodes behind
# nginx, run on its own configuration in a temporary directory.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || install_package nginx-light nginx
# The store tests run on SQLite and on PostgreSQL (IPINTEL_TEST_POSTGRES_URL,
# default postgres://postgres@127.0.0.1:5432/test); under CI they fail when
# PostgreSQL is unreachable, so a stopped local cluster is started first.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then
    echo "test.sh: starting the local PostgreSQL cluster" >&2
    for version in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
  fi
fi
# The shared quota tests (crates/ipintel-store/tests/shared_quotas.rs and the
# Redis part of the cluster test) need Redis on 127.0.0.1:6379; under CI they
# fail without it, so one is started (in memory, loopback only) if none answers.
if ! (command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1); then
  command -v redis-server >/dev/null || install_package redis-server redis-server
  echo "test.sh: starting Redis on 127.0.0.1:6379" >&2
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
# The interface is embedded in the binary, so it is built first.
scripts/build_web.sh
# The MaxMind format's public test corpus (good and corrupt databases) ships
# in the shared folder beside the repository; the tests that need it say so
# when it is absent.
if [ -z "${IPINTEL_SHARED_DIR:-}" ] && [ -d ../shared/data/maxmind-db-test-data ]; then
  IPINTEL_SHARED_DIR=$(cd ../shared/data && pwd)
  export IPINTEL_SHARED_DIR
fi
cargo test --workspace --profile ci --locked "$@"

if [ "${IPINTEL_SKIP_E2E:-0}" = 1 ]; then
  echo "IPINTEL_SKIP_E2E=1: the browser tests are skipped" >&2
  exit 0
fi
cargo build --profile ci --locked -p ipintel --bin ipintel
chromium=${IPINTEL_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || install_package chromium "$chromium"
IPINTEL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/ci/ipintel" IPINTEL_CHROMIUM="$chromium" \
  timeout 900 node --test --test-concurrency=1 --test-timeout=300000 web/e2e/
