#!/usr/bin/env bash
# Create .venv and install Shaobing into it (idempotent). Usage: scripts/setup.sh [EXTRAS]
# EXTRAS: pip extras, e.g. "test,ultralytics". Torch is pinned by constraints so the
# local wheel is used (the Ultralytics extra pulls torch).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
stamp=".venv/.installed-$(echo "$extras" | tr ',' '-')-$(sha256sum pyproject.toml scripts/constraints.txt | sha256sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q -c scripts/constraints.txt -e "$spec"
  touch "$stamp"
fi
