#!/usr/bin/env bash
# 哨兵 Shaobing offline installer (this file sits at the top of the bundle).
#
#   sudo ./install.sh [--prefix /opt/shaobing] [--config-dir /etc/shaobing]
#                     [--data-dir /var/lib/shaobing] [--log-dir /var/log/shaobing]
#                     [--python /usr/bin/python3.11]
#                     [--no-systemd] [--no-user]
#
# Needs only the machine's own CPython >= 3.11 with its venv module (Kylin V10 / UOS 20 /
# Debian 12 / openEuler: python3 and python3-venv or the python3.11 packages) and glibc
# >= 2.28. It never touches the network: pip runs with --no-index on the bundle's
# wheelhouse, every wheel pinned by hash. Installing a newer bundle over an older one
# keeps the config, data and keys; the previous release stays for rollback
# ($prefix/previous; the hub backs the database up before it migrates it at its next
# start: docs/install-offline.md, "Upgrade and rollback").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=/opt/shaobing
confdir=/etc/shaobing
datadir=/var/lib/shaobing
logdir=/var/log/shaobing
python=""
systemd=auto
mkuser=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --config-dir) confdir="$2"; shift 2 ;;
    --data-dir) datadir="$2"; shift 2 ;;
    --log-dir) logdir="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --no-systemd) systemd=no; shift ;;
    --no-user) mkuser=no; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done
die() { echo "安装失败 / install failed: $*" >&2; exit 1; }
started=$(date +%s)
version=$(sed -n 's/^version=//p' "$here/BUILD-INFO")
arch=$(sed -n 's/^arch=//p' "$here/BUILD-INFO")
commit=$(sed -n 's/^commit=//p' "$here/BUILD-INFO" | cut -c1-8)

# 1. The bundle is whole (a copy on a USB stick can be cut short) and for this machine.
[ "$(uname -m)" = "$arch" ] || die "this bundle is for $arch, this machine is $(uname -m)"
(cd "$here" && sha256sum --quiet -c SHA256SUMS) || die "bundle files do not match SHA256SUMS (copy it again)"

# 2. A Python >= 3.11 with venv (glibc >= 2.28 for the manylinux_2_28 wheels).
if [ -z "$python" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python=$(command -v "$candidate"); break
    fi
  done
fi
[ -n "$python" ] || die "no Python >= 3.11 found (install the OS package python3.11, or pass --python PATH)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$python is older than 3.11"
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
[ "$pyver" = 3.11 ] || die "$python is $pyver: this bundle's wheels are for CPython 3.11 (pass --python with a 3.11)"
glibc=$("$python" -c 'import platform; print(platform.libc_ver()[1] or "0")')
"$python" -c "import sys; sys.exit(tuple(map(int, '$glibc'.split('.'))) < (2, 28))" \
  || die "glibc $glibc is older than 2.28 (the wheels are manylinux_2_28)"
"$python" -c 'import venv, ensurepip' 2>/dev/null || die "$python has no venv/ensurepip (install python3-venv)"

# 3. This release in its own folder, named by version and commit (two builds of one
#    version do not share a folder); current -> it, previous -> the one it replaces,
#    .venv -> current/venv (rollback: docs/install-offline.md).
release="$prefix/releases/$version${commit:+-$commit}"
previous=$(readlink "$prefix/current" 2>/dev/null || true)
mkdir -p "$prefix/releases"
if [ ! -f "$release/.complete" ]; then  # a half-done earlier try is started over
  rm -rf "$release"
  mkdir -p "$release"
  "$python" -m venv "$release/venv"
  # PIP_CONFIG_FILE=/dev/null: a site's pip.conf (an index URL) is not consulted.
  PIP_CONFIG_FILE=/dev/null "$release/venv/bin/python" -m pip install -q --no-index \
    --no-cache-dir --disable-pip-version-check --find-links "$here/wheelhouse" \
    --require-hashes -r "$here/requirements.txt" || die "pip install from the wheelhouse"
  cp -r "$here/console" "$here/models" "$here/docs" "$here/examples" "$here/systemd" \
        "$here/BUILD-INFO" "$here/requirements.txt" "$release/"
  if [ -d "$here/demo" ]; then cp -r "$here/demo" "$release/"; fi
  touch "$release/.complete"
fi

# 4. Switch. The database is not touched here: the new release migrates it at its first
#    start, after copying it to $datadir/backup/ (SQLite; PostgreSQL with pg_dump).
if [ -n "$previous" ] && [ "$previous" != "$release" ]; then
  ln -sfn "$previous" "$prefix/previous"
fi
ln -sfn "$release" "$prefix/current"
ln -sfn current/venv "$prefix/.venv"

# 5. Config, environment, wrapper: written once, never overwritten by an upgrade.
mkdir -p "$confdir" "$datadir" "$logdir" "$prefix/bin"
if [ ! -f "$confdir/shaobing.yaml" ]; then
  sed -e "s|@DATA_DIR@|$datadir|; s|@LOG_DIR@|$logdir|; s|@PREFIX@|$prefix|g" \
    "$here/examples/shaobing.yaml" > "$confdir/shaobing.yaml"
fi
if [ ! -f "$confdir/env" ]; then
  cat > "$confdir/env" <<EOF
# Environment of every Shaobing service (systemd EnvironmentFile). Secrets go here, mode 600.
SHAOBING_CONSOLE_DIR=$prefix/current/console
# SHAOBING_ADMIN_PASSWORD=...   (first start: the admin's password; else one is printed once)
EOF
  chmod 600 "$confdir/env"
fi
cat > "$prefix/bin/shaobing" <<EOF
#!/bin/sh
# shaobing with the services' environment ($confdir/env)
set -a; [ -r "$confdir/env" ] && . "$confdir/env"; set +a
exec "$prefix/.venv/bin/shaobing" "\$@"
EOF
chmod 755 "$prefix/bin/shaobing"

# 6. Service user and systemd units (not enabled: the operator does that).
if [ "$mkuser" = yes ] && [ "$(id -u)" = 0 ]; then
  id shaobing >/dev/null 2>&1 || useradd --system --home-dir "$datadir" --shell /usr/sbin/nologin shaobing
  chown -R shaobing: "$datadir" "$logdir"
  chgrp shaobing "$confdir/env" && chmod 640 "$confdir/env"
fi
if [ "$systemd" = auto ] && [ -d /run/systemd/system ] && [ "$(id -u)" = 0 ]; then
  case "$logdir" in  # LogsDirectory= names a folder under /var/log; elsewhere it is made above
    /var/log/?*) logs_unit="s|^LogsDirectory=shaobing|LogsDirectory=${logdir#/var/log/}|" ;;
    *) logs_unit="/^LogsDirectory=/d" ;;
  esac
  for unit in "$release"/systemd/*.service; do
    sed -e "s|/opt/shaobing|$prefix|g; s|/etc/shaobing|$confdir|g; s|/var/lib/shaobing|$datadir|g" \
        -e "s|/var/log/shaobing|$logdir|g; $logs_unit" \
      "$unit" > "/etc/systemd/system/$(basename "$unit")"
  done
  systemctl daemon-reload
  units="systemd: systemctl enable --now shaobing   (单机 / one host; distributed: docs/deployment.md)"
else
  units="no systemd units installed: run $prefix/bin/shaobing run -c $confdir/shaobing.yaml"
fi

# 7. The installed release checks its own config.
"$prefix/bin/shaobing" check-config "$confdir/shaobing.yaml" || die "config check ($confdir/shaobing.yaml)"
cat <<EOF
哨兵 Shaobing $version ($arch) 安装完成 / installed in $(( $(date +%s) - started )) s: $release
  配置 config: $confdir/shaobing.yaml   数据 data: $datadir   日志 logs: $logdir (journal too)
  $units
  现场检查 field check: $prefix/bin/shaobing doctor -c $confdir/shaobing.yaml
  回滚 rollback: docs/install-offline.md ($prefix/previous: ${previous:-none})
EOF
