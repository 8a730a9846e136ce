#!/usr/bin/env bash
# The analytics benchmark matrix: motion gate on/off x batching on/off, for 1, 4 and 8
# cameras, on two 640x360 H.264 clips: crosswalk_people.mp4 (people moving in every frame:
# the gate's worst case) and street_parked_cars.mp4 (a street with quiet spells).
# Usage: bench/matrix.sh [DURATION_S] [OUT_DIR]   (about 14 min at the default 20 s)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-20}"
out="${2:-/tmp/shaobing-bench}"
mkdir -p "$out"
assets="${SHAOBING_ASSETS:-$(cd .. && pwd)/shared/assets}"
for clip in crosswalk_people.mp4 street_parked_cars.mp4; do
  for motion in on off; do
    for batch in 4 1; do
      name="${clip%.mp4}-motion_${motion}-batch_${batch}"
      echo "=== $name"
      .venv/bin/python bench/bench_cameras.py --cameras 1 4 8 --duration "$duration" \
        --clip "$assets/videos/$clip" --motion "$motion" --batch "$batch" \
        --json "$out/$name.json" | tee "$out/$name.txt"
    done
  done
done
.venv/bin/python bench/summarize.py "$out"
