#!/usr/bin/env bash
# Build the web console (console/dist) when it is missing or older than its sources.
# Needs Node 20 and npm (npm ci installs the locked packages from the registry or the
# local npm cache). Usage: scripts/build_console.sh [--check]  (--check: also type-check)
set -euo pipefail
cd "$(dirname "$0")/../console"
stamp=dist/index.html
if [ -f "$stamp" ] && [ -z "$(find src index.html package-lock.json vite.config.ts tsconfig.json -newer "$stamp" -print -quit)" ] \
   && [ "${1:-}" != "--check" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "build_console: npm not found (Node 20 is needed to build the console); the API still runs" >&2
  exit 1
fi
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
