#!/usr/bin/env bash
# Build the web interface (web/ -> web/dist), which the ipintel binary
# embeds when it is compiled. Installs web/'s npm packages from its lock
# file when node_modules is missing or older than the lock, and skips the
# build when web/dist is newer than every source.
#
#   scripts/build_web.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/../web"

force=0
[ "${1:-}" = "--force" ] && force=1

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "build_web: $tool is missing; install Node.js 20 or newer with npm" >&2
    exit 1
  fi
done

# npm packages: `npm ci` follows package-lock.json exactly; if the lock is
# refused (e.g. an npm of another major version), `npm install` once.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "build_web: installing npm packages" >&2
  if ! npm ci --no-audit --no-fund --loglevel=error; then
    echo "build_web: npm ci failed; trying npm install once" >&2
    npm install --no-audit --no-fund --loglevel=error
  fi
fi

# Stale when a source file is newer than the built page.
stale=$force
if [ ! -f dist/index.html ]; then
  stale=1
elif [ -n "$(find src public index.html package.json package-lock.json vite.config.ts tsconfig.json \
  -newer dist/index.html -print -quit 2>/dev/null)" ]; then
  stale=1
fi
if [ "$stale" = 1 ]; then
  echo "build_web: building web/dist" >&2
  npm run --silent build -- --logLevel warn
else
  echo "build_web: web/dist is up to date" >&2
fi
