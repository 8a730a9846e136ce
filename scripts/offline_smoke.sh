#!/usr/bin/env bash
# Proof that the x86_64 offline bundle installs and runs with no network at all:
#   scripts/offline_smoke.sh [BUNDLE.tar.gz]     (root: it creates a network namespace)
# Without an argument it builds dist/shaobing-<version>-x86_64.tar.gz first (needs the
# registries, with a demo clip for the example camera). Then, inside a fresh network
# namespace where only lo is up (no route, no DNS, no registry):
#   install.sh into a temporary prefix (Debian's python3 by default: TARGET_PYTHON=...),
#   the installed hub started, the example camera raises an alert,
#   headless Chromium loads the console (every menu page), /docs and /redoc, and every
#   request it made went to 127.0.0.1 (scripts/offline_check.py).
# Figures (install time, start to console ready, start to first alert) are printed.
# Needs: root (ip netns), chromium, a Python with httpx + playwright (CHECK_PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
check_python="${CHECK_PYTHON:-$root/.venv/bin/python}"
target_python="${TARGET_PYTHON:-/usr/bin/python3}"
port="${PORT:-18080}"
bundle="${1:-}"
if [ -z "$bundle" ]; then
  DEMO_CLIP="${DEMO_CLIP:-$root/../shared/assets/videos/crosswalk_people.mp4}" scripts/bundle.sh x86_64
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
  bundle="$root/dist/shaobing-$version-x86_64.tar.gz"
fi
bundle=$(realpath "$bundle")
ns="sb-offline-$$"
work=$(mktemp -d /tmp/shaobing-offline.XXXXXX)
hub_pid=""
cleanup() {
  if [ -n "$hub_pid" ]; then kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; fi
  ip netns del "$ns" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
inns() { ip netns exec "$ns" "$@"; }
echo "== network namespace $ns: $(inns ip -o link | awk -F': ' '{print $2}' | tr '\n' ' ')routes: $(inns ip route | wc -l)"
inns "$target_python" -c 'import socket
try:
    socket.create_connection(("pypi.org", 443), timeout=3)
except OSError as exc:
    print("   no network, as wanted:", exc)
else:
    raise SystemExit("the namespace reaches the internet")'

echo "== install ($(du -m "$bundle" | cut -f1) MiB bundle)"
t0=$(date +%s%N)
tar -xzf "$bundle" -C "$work"
dir=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'shaobing-*')
inns "$dir/install.sh" --prefix "$work/opt" --config-dir "$work/etc" --data-dir "$work/data" \
  --python "$target_python" --no-systemd --no-user
install_ms=$(( ($(date +%s%N) - t0) / 1000000 ))

sed -i "s/^  port: 8080/  port: $port/" "$work/etc/shaobing.yaml"
password="offline-smoke-$$-pw"
echo "== start the installed hub in the namespace (port $port)"
started=$(date +%s.%N)
SHAOBING_ADMIN_PASSWORD="$password" ip netns exec "$ns" "$work/opt/bin/shaobing" run \
  -c "$work/etc/shaobing.yaml" > "$work/hub.log" 2>&1 &
hub_pid=$!
if ! inns "$check_python" scripts/offline_check.py --base "http://127.0.0.1:$port" \
      --password "$password" --started "$started" > "$work/figures.json"; then
  echo "---- hub log (last 40 lines)"; tail -n 40 "$work/hub.log"; exit 1
fi
echo "== the installed doctor and support bundle, beside the running hub"
inns "$work/opt/bin/shaobing" doctor -c "$work/etc/shaobing.yaml"
inns "$work/opt/bin/shaobing" support-bundle -c "$work/etc/shaobing.yaml" -o "$work/support.tar.gz"
tar -xzOf "$work/support.tar.gz" shaobing-support/health.json | grep -q '"status"' \
  || { echo "offline_smoke: the support bundle holds no health of the running hub" >&2; exit 1; }
if grep -n -i -E "Traceback|ERROR" "$work/hub.log"; then
  echo "offline_smoke: the hub logged errors (above)" >&2; exit 1
fi
printf '{"install_ms": %s, "bundle_mib": %s, "machine": "%s, %s cores", "figures": %s}\n' \
  "$install_ms" "$(du -m "$bundle" | cut -f1)" "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)" \
  "$(nproc)" "$(cat "$work/figures.json")"
echo "offline_smoke: OK"
