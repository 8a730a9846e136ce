#!/usr/bin/env bash
# ARM64 (信创: Kunpeng/Phytium) smoke test of the aarch64 offline bundle, EMULATED:
#   scripts/arm64_smoke.sh [BUNDLE.tar.gz]       (root; x86-64 host)
# An arm64 Debian 12 root filesystem (python3 3.11, glibc 2.36) is made once with
# debootstrap under QEMU user emulation (ROOTFS, default /var/tmp/shaobing-arm64/root;
# needs apt-get install qemu-user-static debootstrap binfmt-support and Debian's mirror).
# Then, in that root with no network (unshare -n + chroot): install.sh, check-config, the
# ONNX detector on real frames (ms per frame, emulated), and `shaobing replay` of the demo
# clip, which must raise an alert. Without an argument the bundle is built first
# (DEMO_CLIP: the clip replayed; default the shared crosswalk clip).
# Timings are of QEMU emulation on this host, not of an ARM server (expect 5-20x slower).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rootfs="${ROOTFS:-/var/tmp/shaobing-arm64/root}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
clip="${DEMO_CLIP:-$root/../shared/assets/videos/crosswalk_people.mp4}"
bundle="${1:-}"
if [ -z "$bundle" ]; then
  DEMO_CLIP="$clip" scripts/bundle.sh aarch64
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
  bundle="$root/dist/shaobing-$version-aarch64.tar.gz"
fi
bundle=$(realpath "$bundle")
t() { date +%s%N; }
ms() { echo $(( ($(t) - $1) / 1000000 )); }

# 1. QEMU user emulation for aarch64 binaries (binfmt_misc, F flag: works in a chroot).
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || { echo "arm64_smoke: qemu-aarch64 binfmt not enabled" >&2; exit 1; }

# 2. The arm64 Debian root (made once; minbase + python3 + the libraries opencv-python needs).
if [ ! -x "$rootfs/usr/bin/python3" ]; then
  t0=$(t)
  mkdir -p "$(dirname "$rootfs")"
  debootstrap --arch arm64 --foreign --variant=minbase \
    --include=python3,python3-venv,libgl1,libglib2.0-0 bookworm "$rootfs" "$mirror"
  chroot "$rootfs" /debootstrap/debootstrap --second-stage
  echo "   arm64 root filesystem made in $(( $(ms "$t0") / 1000 )) s"
fi
echo "== arm64 root: $(chroot "$rootfs" uname -m), $(chroot "$rootfs" python3 --version), glibc $(chroot "$rootfs" ldd --version | head -n1 | awk '{print $NF}')"

mounted=""
cleanup() {
  for m in $mounted; do umount "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
mount -t proc proc "$rootfs/proc" && mounted="$rootfs/proc"
# /sys: onnxruntime's cpuinfo reads the CPU list there (else warnings, a slower path).
mount -t sysfs sysfs "$rootfs/sys" && mounted="$rootfs/sys $mounted"
rm -rf "$rootfs/opt/shaobing" "$rootfs/etc/shaobing" "$rootfs/var/lib/shaobing" "$rootfs/tmp/bundle"
mkdir -p "$rootfs/tmp/bundle"
tar -xzf "$bundle" -C "$rootfs/tmp/bundle"
name=$(basename "$(find "$rootfs/tmp/bundle" -mindepth 1 -maxdepth 1 -type d)")
inroot() { unshare -n chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

echo "== install (no network)"
t0=$(t)
inroot "/tmp/bundle/$name/install.sh" --no-systemd --no-user
install_ms=$(ms "$t0")

echo "== config check"
t0=$(t)
inroot /opt/shaobing/bin/shaobing check-config /etc/shaobing/shaobing.yaml
check_ms=$(ms "$t0")

echo "== detector on real frames"
cp "$clip" "$rootfs/tmp/clip.mp4"
detector_json=$(inroot /opt/shaobing/.venv/bin/python - <<'EOF'
import json, platform, time
from pathlib import Path
import av
from analytics.config import DetectorConfig
from analytics.detectors import create_detector
t0 = time.perf_counter()
det = create_detector(DetectorConfig(model="yolox_nano.onnx"), Path("/tmp/models"),
                      Path("/opt/shaobing/current/models"))
load_s = time.perf_counter() - t0
with av.open("/tmp/clip.mp4") as c:
    frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(60), c.decode(video=0))][::6]
det.detect([frames[0]])  # warm-up
t0 = time.perf_counter()
found = [det.detect([f])[0] for f in frames]
per_frame = (time.perf_counter() - t0) / len(frames) * 1000
persons = sum(len(d) for d in found) / len(found)
print(json.dumps({"machine": platform.machine(), "model_load_s": round(load_s, 2),
                  "detector_ms_per_frame": round(per_frame, 1), "frames": len(frames),
                  "detections_per_frame": round(persons, 1), "frame": list(frames[0].shape)}))
EOF
)
echo "   $detector_json"
python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(not (d['machine']=='aarch64' and d['detections_per_frame']>=1))" "$detector_json" \
  || { echo "arm64_smoke: the detector found nothing on real frames" >&2; exit 1; }

echo "== replay of the demo clip (an alert expected)"
t0=$(t)
replay_json=$(inroot /opt/shaobing/bin/shaobing replay -c /etc/shaobing/shaobing.yaml \
  --camera demo-0001 --source /opt/shaobing/current/demo/demo.mp4 -o /tmp/alerts.jsonl)
replay_ms=$(ms "$t0")
echo "   $replay_json"
alerts=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['alerts'])" "$replay_json")
[ "$alerts" -ge 1 ] || { echo "arm64_smoke: no alert from the replayed clip" >&2; exit 1; }
head -c 300 "$rootfs/tmp/alerts.jsonl"; echo

printf '{"emulated": "qemu-aarch64 user mode on %s (%s cores)", "bundle_mib": %s, "install_ms": %s, "check_config_ms": %s, "replay_ms": %s, "detector": %s, "replay": %s}\n' \
  "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)" "$(nproc)" "$(du -m "$bundle" | cut -f1)" \
  "$install_ms" "$check_ms" "$replay_ms" "$detector_json" "$replay_json"
echo "arm64_smoke: OK (emulated)"
