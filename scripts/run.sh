#!/usr/bin/env bash
# Run the hub on its embedded defaults with the example config (SQLite, in-process bus,
# API and web console on http://127.0.0.1:8080; the console is built first when missing).
# Extra arguments go to `shaobing run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build_console.sh || echo "the console could not be built: the API runs without it" >&2
exec .venv/bin/shaobing run --config "${SHAOBING_CONFIG:-configs/example.yaml}" "$@"
