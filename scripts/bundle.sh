#!/usr/bin/env bash
# Build the offline installation bundle for one CPU architecture:
#   scripts/bundle.sh [x86_64|aarch64]      (default: this machine's)
# -> dist/shaobing-<version>-<arch>.tar.gz, which installs on a machine that has never
# seen the internet (install.sh inside; docs/install-offline.md).
#
# Run it on a machine that reaches PyPI and npm (or their local mirrors): it downloads
# the wheel of every runtime dependency for the TARGET (CPython 3.11 ABI cp311, glibc
# >= 2.28: manylinux_2_28 and older tags), pinned by deploy/offline/constraints.txt,
# builds the project wheel and the console, and copies the detector model(s) with their
# SHA-256. The Ultralytics/torch extra is not bundled (the ONNX detector is the default).
#
# Options (environment): PYTHON (build host's Python, >= 3.11; default python3),
#   MODELS_DIR (default ../shared/assets/models: the *.onnx files to ship),
#   DEMO_CLIP (a video file shipped as share/demo/ and used by the example camera),
#   TARGET_PY (target Python minor version, default 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
arch="${1:-$(uname -m)}"
case "$arch" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) echo "bundle: unknown architecture '$arch' (x86_64 or aarch64)" >&2; exit 2 ;;
esac
python="${PYTHON:-python3}"
models_dir="${MODELS_DIR:-$root/../shared/assets/models}"
target_py="${TARGET_PY:-3.11}"
abi="cp${target_py/./}"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
[ -n "$version" ] || { echo "bundle: no version in pyproject.toml" >&2; exit 1; }
name="shaobing-$version-$arch"
out="$root/dist/$name"
started=$(date +%s)
rm -rf "$out" "$out.tar.gz"
mkdir -p "$out/wheelhouse" "$out/models" "$out/docs" "$out/examples" "$out/systemd"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== $name: project wheel"
# Built from the files git knows (committed or not, never ignored ones): no build/ leftovers.
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$tmp"
mkdir -p "$tmp/src" && (cd "$tmp" && find . -mindepth 1 -maxdepth 1 ! -name src -exec mv {} src/ \;)
"$python" -m pip wheel -q --no-deps -w "$out/wheelhouse" "$tmp/src"
wheel=$(ls "$out"/wheelhouse/shaobing-*.whl)

echo "== $name: dependency wheels (manylinux_2_28_$arch and older, $abi)"
# pip evaluates environment markers against THIS interpreter, not the target's: the wheels
# that only some target Pythons need are named in deploy/offline/marker-wheels.txt.
# --only-binary: the target has no compiler; a dependency without a wheel for the target
# fails here, at build time, not on the site.
mapfile -t marker_wheels < <(grep -v -e '^#' -e '^\s*$' deploy/offline/marker-wheels.txt)
"$python" -m pip download -q --only-binary=:all: \
  --platform "manylinux2014_$arch" --platform "manylinux_2_28_$arch" \
  --implementation cp --python-version "$target_py" --abi "$abi" --abi abi3 --abi none \
  -c deploy/offline/constraints.txt -d "$out/wheelhouse" "$wheel" "${marker_wheels[@]}"

# Every wheel checked for the target by what it holds (tags, ELF machine, glibc symbol
# versions); the known gaps (deploy/offline/wheel-gaps.txt) are printed, not fatal.
"$python" scripts/check_wheels.py "$out/wheelhouse" "$arch" --python "$target_py" \
  --known deploy/offline/wheel-gaps.txt | sed 's/^/   /'
[ "${PIPESTATUS[0]}" = 0 ] || { echo "bundle: wheels that would fail on the target (above)" >&2; exit 1; }

# requirements.txt: every wheel pinned with its hash (install.sh uses --require-hashes).
"$python" - "$out/wheelhouse" > "$out/requirements.txt" <<'EOF'
import hashlib, pathlib, sys
for whl in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name, ver = whl.name.split("-")[:2]
    digest = hashlib.sha256(whl.read_bytes()).hexdigest()
    print(f"{name.replace('_', '-').lower()}=={ver} --hash=sha256:{digest}")
EOF

echo "== $name: console"
scripts/build_console.sh
cp -r console/dist "$out/console"

echo "== $name: models"
found=0
for model in "$models_dir"/*.onnx; do
  [ -f "$model" ] || continue
  cp "$model" "$out/models/" && found=1
done
[ "$found" = 1 ] || { echo "bundle: no *.onnx model in $models_dir (set MODELS_DIR)" >&2; exit 1; }
(cd "$out/models" && sha256sum -- *.onnx > SHA256SUMS)
# The hub verifies known models against its own table; the bundle must agree with it.
while read -r sum file; do
  if grep -q "$sum" analytics/models.py; then echo "   $file $sum (matches analytics/models.py)";
  else echo "   $file $sum (not in analytics/models.py: set detector.sha256 in the config)"; fi
done < "$out/models/SHA256SUMS"

echo "== $name: docs, examples, systemd units, installer"
cp README.md "$out/docs/" && cp -r docs/. "$out/docs/"
cp configs/example.yaml deploy/county.yaml deploy/offline/shaobing.yaml "$out/examples/"
cp deploy/systemd/*.service deploy/offline/shaobing.service "$out/systemd/"
cp deploy/offline/install.sh "$out/install.sh" && chmod +x "$out/install.sh"
if [ -n "${DEMO_CLIP:-}" ]; then
  mkdir -p "$out/demo" && cp "$DEMO_CLIP" "$out/demo/demo.mp4"
fi
cat > "$out/BUILD-INFO" <<EOF
name=shaobing
version=$version
arch=$arch
python=>=$target_py (wheels for CPython $target_py, $abi; glibc >= 2.28)
commit=$(git rev-parse HEAD)$(git diff --quiet HEAD -- . ':!dist' || echo "+uncommitted")
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
builder=$(uname -m) $("$python" --version 2>&1) $("$python" -m pip --version | cut -d' ' -f1-2)
EOF
(cd "$out" && find . -type f ! -path ./SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > "$tmp/SHA256SUMS" \
  && mv "$tmp/SHA256SUMS" SHA256SUMS)

echo "== $name: archive"
if command -v pigz >/dev/null; then  # every core (the archive is most of a rebuild's time)
  tar -C "$root/dist" -cf - "$name" | pigz > "$out.tar.gz"
else
  tar -C "$root/dist" -czf "$out.tar.gz" "$name"
fi
rm -rf "$out"
size=$(du -m "$out.tar.gz" | cut -f1)
wheels=$(tar -tzf "$out.tar.gz" | grep -c '\.whl$')
echo "$out.tar.gz: ${size} MiB, $wheels wheels, built in $(( $(date +%s) - started )) s"
