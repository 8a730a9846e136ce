#!/usr/bin/env bash
# Run the hub on its embedded defaults with the example config (SQLite, in-process bus,
# API on http://127.0.0.1:8080). Extra arguments go to `shaobing run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/shaobing run --config "${SHAOBING_CONFIG:-configs/example.yaml}" "$@"
