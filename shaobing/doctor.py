"""``shaobing doctor`` and ``shaobing support-bundle``: what a field engineer needs on site.

``doctor`` checks, for one config: the API port (free, or held by a running hub that
answers /healthz), disk space, the detector model's SHA-256, the database (reachable,
schema at the head migration), Redis in distributed mode, a sample of cameras (TCP
reachability of the stream's host, or the file), and optionally the clock against an
HTTP server's ``Date`` (the GB/T 28181 platform's, for example). It prints a Chinese
report (English in brackets) and exits 1 when a check fails.

``support-bundle`` writes one ``.tar.gz`` for the vendor: versions, the doctor report,
the running hub's /healthz, the config with every secret masked, and the logs (the
systemd journal of the shaobing units, ``logging.file`` with its rotated files and files
named with ``--log``, the last 8 MiB of each), masked too.
Nothing in either ever holds a camera or database password.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import platform
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from camera_registry.urls import mask_url
from shaobing.config import LoadedConfig

Status = Literal["ok", "warn", "fail"]
MARK = {"ok": "✔ 正常", "warn": "! 注意", "fail": "✘ 故障"}

#: Free space below these is a warning / a failure (evidence and the database grow).
DISK_WARN_BYTES = 10 << 30
DISK_FAIL_BYTES = 1 << 30
#: Clock offset against the reference beyond this is a warning (GB/T 28181 registration
#: and evidence timestamps need agreement within seconds).
CLOCK_WARN_S = 2.0

SECRET_KEY = re.compile(r"(secret|password|passwd|token|key|credential)", re.I)


@dataclass
class Check:
    item: str  # Chinese name of what was checked
    status: Status
    detail: str

    def line(self) -> str:
        return f"{MARK[self.status]}  {self.item}: {self.detail}"


def _guard(item: str, fn: Callable[[], Check]) -> Check:
    """A check that raises is a failed check with the reason, not a crash of the doctor."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported to the engineer, masked
        return Check(item, "fail", mask_url(f"{type(exc).__name__}: {exc}"))


# -- the checks --------------------------------------------------------------------------


def check_port(host: str, port: int, *, timeout: float = 2.0) -> Check:
    item = f"端口 (port) {host}:{port}"
    bind_host = "0.0.0.0" if host in ("0.0.0.0", "") else host
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind_host, port))
            return Check(item, "ok", "空闲，可以启动 (free)")
        except OSError as exc:
            busy = exc
    probe = "127.0.0.1" if bind_host in ("0.0.0.0", "::") else host
    try:
        import httpx

        r = httpx.get(f"http://{probe}:{port}/healthz", timeout=timeout)
        if r.status_code == 200 and "version" in r.json():
            version = r.json()["version"]
            return Check(item, "ok", f"哨兵已在运行，版本 {version} (the hub runs here)")
    except Exception:  # noqa: BLE001 - anything else on the port is reported below
        pass
    return Check(item, "fail", f"已被其他程序占用 (in use by another program: {busy.strerror})")


def check_disk(label: str, path: Path) -> Check:
    item = f"磁盘 (disk) {label} {path}"
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    free_gib = usage.free / (1 << 30)
    text = f"剩余 {free_gib:.1f} GiB / 共 {usage.total / (1 << 30):.1f} GiB (free / total)"
    if usage.free < DISK_FAIL_BYTES:
        return Check(item, "fail", text + "，空间不足 (full)")
    if usage.free < DISK_WARN_BYTES:
        return Check(item, "warn", text + "，空间偏少 (low)")
    return Check(item, "ok", text)


def check_model(loaded: LoadedConfig) -> Check:
    """The model file the hub would load (read only: nothing copied or downloaded)."""
    from analytics.models import KNOWN_MODELS, sha256_file

    det = loaded.config.detector
    item = f"模型 (model) {det.model}"
    spec = Path(det.model).expanduser()
    candidates = [spec] if spec.is_absolute() or len(spec.parts) > 1 else []
    candidates.append(loaded.models_dir / spec.name)
    if loaded.mirror_dir is not None:
        candidates.append(loaded.mirror_dir / spec.name)
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        looked = ", ".join(str(c) for c in candidates)
        return Check(item, "fail", f"找不到模型文件 (not found; looked in {looked})")
    digest = sha256_file(path)
    known = det.sha256 or (KNOWN_MODELS[path.name].sha256 if path.name in KNOWN_MODELS else None)
    if known is None:
        return Check(item, "warn", f"{path} SHA-256 {digest}，未登记校验值 (no expected hash: "
                     "set detector.sha256)")  # fmt: skip
    if digest != known:
        return Check(item, "fail", f"{path} SHA-256 {digest} 与预期 {known} 不符，文件损坏或被替换 "
                     "(hash mismatch: corrupt or replaced)")  # fmt: skip
    return Check(item, "ok", f"{path} SHA-256 校验一致 (matches) {digest[:16]}…")


def check_database(loaded: LoadedConfig) -> Check:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text

    from shaobing.db import alembic_config

    url = loaded.database_url
    item = f"数据库 (database) {mask_url(url)}"
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return Check(item, "ok", "尚未创建，首次启动时建立 (created at the first start)")
    engine = create_engine(url, connect_args={"connect_timeout": 5} if "postgresql" in url else {})
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
            current = MigrationContext.configure(conn).get_current_revision()
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    finally:
        engine.dispose()
    if current == head:
        return Check(item, "ok", f"可连接，结构版本 {current} 为最新 (reachable, schema at head)")
    return Check(item, "warn", f"可连接，结构版本 {current}，新版本 {head} 将在启动时迁移 "
                 "(reachable; migrated at the next start: back it up first)")  # fmt: skip


def check_redis(loaded: LoadedConfig) -> Check | None:
    bus = loaded.config.bus
    if bus.kind != "redis":
        return None
    import redis

    item = f"Redis (分布式模式 distributed) {mask_url(bus.url)}"
    client = redis.Redis.from_url(bus.url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    finally:
        client.close()
    return Check(item, "ok", f"可连接，版本 {version} (reachable)")


def check_camera(loaded: LoadedConfig, cam: Any, *, timeout: float = 3.0) -> Check:
    url = loaded.source_url(cam)
    item = f"摄像机 (camera) {cam.id}"
    if url is None:
        return Check(item, "warn", "无视频源地址 (no source URL: ONVIF or registry)")
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(parts.path)
        if path.is_file():
            return Check(item, "ok", f"文件存在 (file) {path}")
        return Check(item, "fail", f"文件不存在 (no such file) {path}")
    host = parts.hostname or ""
    default = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}.get(parts.scheme, 554)
    port = parts.port or default
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            ms = (time.monotonic() - started) * 1000
        return Check(item, "ok", f"{mask_url(url)} 可连接 (reachable) {ms:.0f} ms")
    except OSError as exc:
        return Check(item, "fail", f"{mask_url(url)} 无法连接 (unreachable): {exc.strerror or exc}")


def check_clock(url: str, *, timeout: float = 5.0) -> Check:
    import httpx

    item = f"时间同步 (clock) {mask_url(url)}"
    before = time.time()
    r = httpx.head(url, timeout=timeout)
    after = time.time()
    date = r.headers.get("date")
    if not date:
        return Check(item, "warn", "对方未返回 Date 头 (no Date header)")
    theirs = parsedate_to_datetime(date).timestamp()
    offset = (before + after) / 2 - theirs  # Date has 1 s resolution
    text = f"本机比对方{'快' if offset > 0 else '慢'} {abs(offset):.1f} s (offset)"
    if abs(offset) > CLOCK_WARN_S + 1:
        return Check(item, "warn", text + "，请配置 NTP (configure NTP)")
    return Check(item, "ok", text)


def run_checks(
    loaded: LoadedConfig, *, cameras: int = 5, clock_url: str | None = None
) -> list[Check]:
    cfg = loaded.config
    checks = [Check("配置 (config)", "ok", f"{loaded.path or '内置默认'} 校验通过 (valid)")]
    checks.append(_guard("端口 (port)", lambda: check_port(cfg.api.host, cfg.api.port)))
    checks.append(_guard("磁盘 (disk)", lambda: check_disk("数据", loaded.data_dir)))
    if loaded.snapshot_dir != loaded.data_dir / "snapshots":
        checks.append(_guard("磁盘 (disk)", lambda: check_disk("证据", loaded.snapshot_dir)))
    checks.append(_guard(f"模型 (model) {cfg.detector.model}", lambda: check_model(loaded)))
    checks.append(_guard(f"数据库 (database) {mask_url(loaded.database_url)}",
                         lambda: check_database(loaded)))  # fmt: skip
    redis_check = _guard("Redis", lambda: check_redis(loaded) or Check("", "ok", ""))
    if cfg.bus.kind == "redis":
        checks.append(redis_check)
    for cam in cfg.cameras[:cameras]:
        checks.append(_guard(f"摄像机 (camera) {cam.id}", partial(check_camera, loaded, cam)))
    if len(cfg.cameras) > cameras:
        checks.append(Check("摄像机 (cameras)", "ok",
                            f"抽查 {cameras} 路，共 {len(cfg.cameras)} 路 (a sample)"))  # fmt: skip
    if clock_url:
        item = f"时间同步 (clock) {mask_url(clock_url)}"
        checks.append(_guard(item, partial(check_clock, clock_url)))
    return checks


def report(checks: Iterable[Check]) -> str:
    checks = list(checks)
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    head = f"哨兵现场检查 (Shaobing doctor) {dt.datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z}"
    lines = [head, *[c.line() for c in checks]]
    verdict = "全部正常 (all good)" if not failed and not warned else \
        f"{failed} 项故障，{warned} 项注意 ({failed} failed, {warned} warnings)"  # fmt: skip
    lines.append(f"结论 (verdict): {verdict}")
    return "\n".join(lines)


# -- support bundle --------------------------------------------------------------------


def mask_config_text(text: str) -> str:
    """The config's YAML with the value of every secret-looking key (as ``"***"``: still
    YAML) and every URL's credentials masked (``${VAR}`` references are kept: they name,
    not hold, a secret)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\s*-?\s*)([A-Za-z_][\w.-]*)(\s*:\s*)(.+?)(\s+#.*)?$", line)
        if m and SECRET_KEY.search(m.group(2)) and not m.group(4).startswith("${"):
            value = m.group(4)
            if value not in ("null", "~", "''", '""', "true", "false") and not value.startswith(
                ("{", "[")
            ):
                line = f'{m.group(1)}{m.group(2)}{m.group(3)}"***"{m.group(5) or ""}'
        out.append(mask_url(line))
    return "\n".join(out) + "\n"


def versions() -> dict[str, Any]:
    from importlib import metadata

    info: dict[str, Any] = {
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "libc": " ".join(platform.libc_ver()),
        "packages": sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()),
    }
    try:
        info["shaobing"] = metadata.version("shaobing")
    except metadata.PackageNotFoundError:
        info["shaobing"] = "not installed (source tree)"
    build = Path(sys.prefix).parent / "BUILD-INFO"  # an offline-bundle install
    if build.is_file():
        info["bundle"] = build.read_text(encoding="utf-8")
    return info


LOG_TAIL_BYTES = 8 * 1024 * 1024


def _journal(since: str) -> str | None:
    if shutil.which("journalctl") is None:
        return None
    done = subprocess.run(
        ["journalctl", "--no-pager", "-o", "short-iso", "--since", since, "-u", "shaobing*"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.stdout if done.returncode == 0 else None


def support_bundle(
    loaded: LoadedConfig,
    out: Path,
    *,
    logs: Iterable[Path] = (),
    since: str = "-2d",
    checks: list[Check] | None = None,
) -> list[str]:
    """Write the support bundle to ``out`` (.tar.gz); return the names it holds."""
    checks = checks if checks is not None else run_checks(loaded)
    files: dict[str, bytes] = {
        "versions.json": json.dumps(versions(), ensure_ascii=False, indent=1).encode(),
        "doctor.txt": report(checks).encode(),
        "doctor.json": json.dumps([asdict(c) for c in checks], ensure_ascii=False,
                                  indent=1).encode(),  # fmt: skip
    }
    if loaded.path is not None:
        files["config.yaml"] = mask_config_text(loaded.path.read_text(encoding="utf-8")).encode()
    api = loaded.config.api
    host = "127.0.0.1" if api.host in ("0.0.0.0", "::") else api.host
    try:
        import httpx

        r = httpx.get(f"http://{host}:{api.port}/healthz", timeout=3)
        files["health.json"] = mask_url(r.text).encode()
    except Exception as exc:  # noqa: BLE001 - the hub may be down: say so in the bundle
        files["health.json"] = json.dumps({"error": f"hub not answering: {exc}"}).encode()
    journal = _journal(since)
    if journal:
        files["logs/journal.log"] = mask_url(journal).encode()
    for log in logs:
        if log.is_file():
            with log.open("rb") as fh:  # the last LOG_TAIL_BYTES of each file
                fh.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
                text = fh.read().decode("utf-8", errors="replace")
            files[f"logs/{log.name}"] = mask_url(text).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.time()
    with tarfile.open(out, "w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(f"shaobing-support/{name}")
            member.size, member.mtime, member.mode = len(data), int(stamp), 0o600
            tar.addfile(member, io.BytesIO(data))
    return sorted(files)


# -- command line (shaobing/cli.py adds these two commands) -----------------------------


def cmd_doctor(args: Any) -> int:
    from shaobing.cli import _load

    loaded = _load(args.config)
    checks = run_checks(loaded, cameras=args.cameras, clock_url=args.clock_url)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], ensure_ascii=False))
    else:
        print(report(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


def cmd_support_bundle(args: Any) -> int:
    from shaobing.cli import _load

    loaded = _load(args.config)
    out = Path(args.output or f"shaobing-support-{dt.datetime.now():%Y%m%d-%H%M%S}.tar.gz")
    logs = [Path(p) for p in args.log]
    own = loaded.log_file()
    if own is not None and own.parent.is_dir():  # logging.file: the current and rotated files
        logs += sorted(own.parent.glob(f"{own.stem}*{own.suffix}*"))
    names = support_bundle(loaded, out, logs=logs, since=args.since)
    print(f"支持包已生成 (support bundle written): {out} ({', '.join(names)})")
    return 0


def add_parsers(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="field check: ports, disk, model, database, Redis, "
                            "cameras (Chinese report; exit 1 if a check fails)")  # fmt: skip
    doctor.add_argument("--config", "-c", help="YAML config")
    doctor.add_argument("--cameras", type=int, default=5, help="cameras to sample (default 5)")
    doctor.add_argument("--clock-url", help="compare the clock with this HTTP server's Date "
                        "(the GB/T 28181 platform's web address)")  # fmt: skip
    doctor.add_argument("--json", action="store_true", help="the checks as JSON")
    doctor.set_defaults(func=cmd_doctor)
    bundle = sub.add_parser("support-bundle", help="one .tar.gz for the vendor: versions, "
                            "doctor, health, masked config and logs")  # fmt: skip
    bundle.add_argument("--config", "-c", help="YAML config")
    bundle.add_argument("--output", "-o", help="file to write (default: in this folder)")
    bundle.add_argument("--log", action="append", default=[], help="a log file to include")
    bundle.add_argument("--since", default="-2d", help="journal since (journalctl --since)")
    bundle.set_defaults(func=cmd_support_bundle)
