#!/usr/bin/env bash
# Upgrade in place and rollback, with two real offline bundles built from two commits:
#   scripts/upgrade_smoke.sh [BASE_REF]        (default: BASE_REF or the pin below)
#
# N   = the bundle of BASE_REF (an earlier commit: its own scripts/bundle.sh, built in a
#       temporary git worktree; cached in dist/cache/ by commit, so CI builds it once),
# N+1 = the bundle of this working tree (scripts/bundle.sh; NEW_BUNDLE=file reuses one).
# Both are installed with their own install.sh into one temporary prefix, twice over:
# a hub on SQLite and a hub on PostgreSQL (a scratch database on the local server).
#   1. install N; import a camera (with a password: encrypted with secret.key); start
#      both hubs; wait for an alert of the example camera, acknowledge it, create a
#      user (scripts/upgrade_check.py seed); stop;
#   2. install N+1 over it; start: the database is backed up (SQLite copy, pg_dump) and
#      migrated with Alembic to N+1's head; the alert with its history, the user (its
#      password), the cameras are there; config, env and keys are byte for byte the same;
#   3. roll back: current -> previous (N's files), the backups restored; N starts, at its
#      own revision, with the data of step 1.
# Prints the figures (seconds per step) as JSON; exits 1 at the first failed check.
# Needs: the registries (to build the bundles), Node (console), PostgreSQL on
# 127.0.0.1:5432 (PG_ADMIN_URL), a Python with httpx (CHECK_PYTHON), a target CPython
# 3.11 (TARGET_PYTHON). Run by tests/integration/test_upgrade.py.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# The previous release. Move it to the last release's tag once releases are tagged; it
# must be a commit that has scripts/bundle.sh (the offline bundle, issue 28).
base_ref="${1:-${BASE_REF:-be4542f0d417}}"
check_python="${CHECK_PYTHON:-$root/.venv/bin/python}"
target_python="${TARGET_PYTHON:-/usr/bin/python3}"
pg_admin="${PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
cache="${BUNDLE_CACHE:-$root/dist/cache}"
models="${MODELS_DIR:-$root/../shared/assets/models}"
export DEMO_CLIP="${DEMO_CLIP:-$root/../shared/assets/videos/crosswalk_people.mp4}"
arch=$(uname -m)
work=$(mktemp -d /tmp/shaobing-upgrade.XXXXXX)
db="sb_upgrade_$$"
pg_url="postgresql+psycopg://${pg_admin#postgresql://}"
pg_url="${pg_url%/*}/$db"
password="upgrade-smoke-$$-pw"
pids=()
t_all=$(date +%s)
figures=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  psql "$pg_admin" -qtAc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  if [ -d "$work/base" ]; then git worktree remove --force "$work/base" 2>/dev/null || true; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT
fail() { echo "upgrade_smoke: $*" >&2; exit 1; }
step() { echo "== $*"; t_step=$(date +%s); }
took() { figures+=("\"$1\": $(( $(date +%s) - t_step ))"); }

# -- the two bundles ---------------------------------------------------------------
if ! git rev-parse -q --verify "$base_ref^{commit}" >/dev/null \
   && [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then
  echo "upgrade_smoke: $base_ref is not in this shallow clone: fetching the history from origin"
  git fetch -q --unshallow origin 2>/dev/null || git fetch -q origin "$base_ref" 2>/dev/null || true
fi
base=$(git rev-parse --short=12 "$base_ref^{commit}" 2>/dev/null) \
  || fail "$base_ref is not in this clone (a shallow CI checkout? fetch it: git fetch --unshallow, or set BASE_REF)"
old="$cache/shaobing-$arch-$base.tar.gz"
step "bundle N from $base_ref ($base)"
if [ ! -f "$old" ]; then
  git worktree add --detach -q "$work/base" "$base"
  # The console of N: the same sources as here -> this tree's build; else N's own build
  # (with this tree's node_modules when the lock file is the same).
  if git diff --quiet "$base" HEAD -- console/ ':!console/dist' && [ -f console/dist/index.html ]; then
    scripts/build_console.sh && cp -r console/dist "$work/base/console/dist"
  elif git diff --quiet "$base" HEAD -- console/package-lock.json && [ -d console/node_modules ]; then
    ln -s "$root/console/node_modules" "$work/base/console/node_modules"
  fi
  (cd "$work/base" && MODELS_DIR="$models" scripts/bundle.sh "$arch")
  mkdir -p "$cache"
  mv "$work"/base/dist/shaobing-*-"$arch".tar.gz "$old"
  git worktree remove --force "$work/base"
fi
took bundle_n_s
step "bundle N+1 from this tree"
new="${NEW_BUNDLE:-}"
if [ -z "$new" ]; then
  MODELS_DIR="$models" scripts/bundle.sh "$arch"
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
  new="$root/dist/shaobing-$version-$arch.tar.gz"
fi
took bundle_n1_s

# -- helpers -------------------------------------------------------------------------
free_port() { "$check_python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
install_bundle() {  # install_bundle BUNDLE NAME: into $work/opt, config etc-NAME, data data-NAME
  local unpack="$work/unpack-$(basename "$1" .tar.gz)" dir extra=()
  [ -d "$unpack" ] || { mkdir -p "$unpack"; tar -xzf "$1" -C "$unpack"; }
  dir=$(find "$unpack" -mindepth 1 -maxdepth 1 -type d -name 'shaobing-*')
  if grep -q -- '--log-dir' "$dir/install.sh"; then extra=(--log-dir "$work/log-$2"); fi
  "$dir/install.sh" --prefix "$work/opt" --config-dir "$work/etc-$2" --data-dir "$work/data-$2" \
    "${extra[@]}" --python "$target_python" --no-systemd --no-user
}
start_hub() {  # start_hub NAME: the installed hub with config etc-NAME, log hub-NAME-<n>.log
  SHAOBING_ADMIN_PASSWORD="$password" "$work/opt/bin/shaobing" run -c "$work/etc-$1/shaobing.yaml" \
    >> "$work/hub-$1.log" 2>&1 &
  pids+=($!)
  eval "pid_$1=$!"
}
stop_hub() {  # stop_hub NAME: SIGTERM, exit 0 expected
  local pid code=0
  pid=$(eval echo "\$pid_$1")
  kill -TERM "$pid"
  wait "$pid" || code=$?
  [ "$code" = 0 ] || { tail -n 30 "$work/hub-$1.log"; fail "the $1 hub exited $code"; }
}
check() {  # check seed|verify NAME
  if ! "$check_python" scripts/upgrade_check.py "$1" --base "http://127.0.0.1:$(eval echo "\$port_$2")" \
      --password "$password" --state "$work/state-$2.json" > "$work/check-$1-$2.json"; then
    echo "---- $2 hub log (last 40 lines)"; tail -n 40 "$work/hub-$2.log"; fail "$1 on the $2 hub"
  fi
  echo "   $2: $(cat "$work/check-$1-$2.json")"
}
revision() {  # revision NAME: the database's Alembic revision
  if [ "$1" = sqlite ]; then
    "$check_python" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT version_num FROM alembic_version").fetchone()[0])' \
      "$work/data-sqlite/shaobing.db"
  else
    psql "${pg_admin%/*}/$db" -qtAc "SELECT version_num FROM alembic_version"
  fi
}
head_of() { "$work/opt/current/venv/bin/python" -c 'from shaobing.db import head_revision; print(head_revision())'; }
kept_files() {  # what an upgrade must not change, by hash
  (cd "$work" && sha256sum etc-sqlite/shaobing.yaml etc-sqlite/env data-sqlite/secret.key \
    etc-pg/shaobing.yaml etc-pg/env data-pg/secret.key data-*/link.key 2>/dev/null)
}

# -- 1. N installed, data made ----------------------------------------------------------
step "install N ($(du -m "$old" | cut -f1) MiB)"
install_bundle "$old" sqlite
took install_n_s
install_bundle "$old" pg > /dev/null  # the same release: only the second config
psql "$pg_admin" -qtAc "CREATE DATABASE $db" >/dev/null
sed -i "s|^  database_url: null|  database_url: $pg_url|" "$work/etc-pg/shaobing.yaml"
grep -q "database_url: $pg_url" "$work/etc-pg/shaobing.yaml" || fail "etc-pg: database_url not set"
for name in sqlite pg; do
  eval "port_$name=$(free_port)"
  sed -i "s/^  port: 8080/  port: $(eval echo "\$port_$name")/" "$work/etc-$name/shaobing.yaml"
  # a camera that does not answer: kept, its password (its own column, never in the URL)
  # stored encrypted
  printf 'id,name,url,username,password,county,township\nupgrade-cam-01,升级测试摄像机,rtsp://127.0.0.1:9/main,admin,cam-secret-9,示例县,城关镇\n' \
    > "$work/cams.csv"
  "$work/opt/bin/shaobing" cameras import "$work/cams.csv" -c "$work/etc-$name/shaobing.yaml" \
    || fail "camera import ($name)"
done
n_release=$(readlink "$work/opt/current")
step "N: start both hubs, an alert, a user"
start_hub sqlite; start_hub pg
check seed sqlite; check seed pg
stop_hub sqlite; stop_hub pg
took n_seed_s
n_head=$(revision sqlite)
[ "$(revision pg)" = "$n_head" ] || fail "N's two databases at different revisions"
kept_files > "$work/kept.before"

# -- 2. N+1 installed over it ------------------------------------------------------------
step "install N+1 over N ($(du -m "$new" | cut -f1) MiB)"
install_bundle "$new" sqlite
took install_n1_s
install_bundle "$new" pg > /dev/null
new_head=$(head_of)
[ "$(readlink "$work/opt/previous")" = "$n_release" ] || fail "previous does not point to N's release"
[ "$(readlink "$work/opt/current")" != "$n_release" ] || fail "current still points to N's release"
echo "   release N $(basename "$n_release") at $n_head -> N+1 $(basename "$(readlink "$work/opt/current")") at $new_head"
step "N+1: start (backup, migration), the data kept"
start_hub sqlite; start_hub pg
check verify sqlite; check verify pg
stop_hub sqlite; stop_hub pg
took n1_verify_s
for name in sqlite pg; do
  [ "$(revision $name)" = "$new_head" ] || fail "$name: database at $(revision $name), not $new_head"
done
kept_files | diff "$work/kept.before" - || fail "config, env or keys changed by the upgrade"
if [ "$n_head" != "$new_head" ]; then
  sqlite_backup=$(ls "$work/data-sqlite/backup/shaobing-$n_head-"*.db 2>/dev/null | head -n1)
  pg_backup=$(ls "$work/data-pg/backup/shaobing-$n_head-"*.dump 2>/dev/null | head -n1)
  [ -n "$sqlite_backup" ] && [ -n "$pg_backup" ] || fail "no database backup of revision $n_head"
  grep -q "database backed up before the migration" "$work/hub-sqlite.log" || fail "no backup logged"
else
  echo "   N and N+1 have the same migrations ($n_head): nothing to migrate, no backup needed"
fi

# -- 3. rollback to N's files, the backups restored ---------------------------------------
step "rollback to N with the backups"
ln -sfn "$(readlink "$work/opt/previous")" "$work/opt/current"
if [ "$n_head" != "$new_head" ]; then
  rm -f "$work/data-sqlite/shaobing.db-wal" "$work/data-sqlite/shaobing.db-shm"
  cp "$sqlite_backup" "$work/data-sqlite/shaobing.db"
  psql "$pg_admin" -qtAc "DROP DATABASE $db" -c "CREATE DATABASE $db" >/dev/null
  pg_restore --no-owner --dbname "${pg_admin%/*}/$db" "$pg_backup"
fi
start_hub sqlite; start_hub pg
check verify sqlite; check verify pg
stop_hub sqlite; stop_hub pg
took rollback_s
for name in sqlite pg; do
  [ "$(revision $name)" = "$n_head" ] || fail "$name: after the rollback at $(revision $name), not $n_head"
done
if grep -n "Traceback" "$work"/hub-*.log; then fail "a hub logged a traceback (above)"; fi
printf '{"base": "%s", "revisions": "%s -> %s", %s, "total_s": %s, "machine": "%s cores, load %s"}\n' \
  "$base" "$n_head" "$new_head" "$(IFS=,; echo "${figures[*]}")" "$(( $(date +%s) - t_all ))" \
  "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "upgrade_smoke: OK"
