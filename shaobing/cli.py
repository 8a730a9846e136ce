"""The ``shaobing`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

from camera_registry.urls import mask_url
from shaobing.config import ConfigError, LoadedConfig, load_config

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from camera_registry.store import CameraRecord
    from core.secrets import SecretCipher

log = logging.getLogger("shaobing")

EXIT_CONFIG = 2


class MaskingFilter(logging.Filter):
    """Masks URL credentials in every log record, whoever logs it (FFmpeg included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_url(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(level: str = "INFO", file: Path | None = None, *, max_mb: int = 20,
                  keep: int = 10) -> None:  # fmt: skip
    """Log to standard error and (``file``) to a file rotated at ``max_mb`` MiB, ``keep``
    old files kept: the file never takes more than (keep + 1) × max_mb."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if file is not None:
        from logging.handlers import RotatingFileHandler

        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(RotatingFileHandler(file, maxBytes=max_mb * 1024 * 1024,
                                            backupCount=keep, encoding="utf-8"))  # fmt: skip
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "zeep", "onvif", "uvicorn.access", "libav", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        import av.logging

        av.logging.set_level(av.logging.ERROR)
    except ImportError:  # pragma: no cover
        pass


def _load(path: str | None) -> LoadedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"configuration error(s) in {path or 'the embedded default config'}:",
              file=sys.stderr)  # fmt: skip
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


# -- commands -----------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    cfg = loaded.config
    print(f"{args.file}: OK ({len(cfg.cameras)} camera(s), {len(cfg.dispatch)} dispatch "
          f"target(s), detector {cfg.detector.backend}:{cfg.detector.model})")  # fmt: skip
    return 0


def _setup_logging(loaded: LoadedConfig, role: str | None = None) -> None:
    cfg = loaded.config.logging
    setup_logging(cfg.level, loaded.log_file(role), max_mb=cfg.max_mb, keep=cfg.keep)


def cmd_run(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    _setup_logging(loaded, "workers" if args.workers else None)
    from sqlalchemy.exc import SQLAlchemyError

    from analytics.detectors import DetectorError
    from shaobing.bootstrap import Hub
    from shaobing.db import SchemaError

    where = args.config or "default config"
    if args.workers:  # the distributed mechanism on one machine: N worker processes
        return _run_role(lambda roles: roles.run_all(loaded, args.workers,
                                                     metrics_port=args.metrics_port))  # fmt: skip
    if loaded.config.bus.kind == "redis":
        log.warning(
            "bus.kind: redis is for `run --workers N` and the roles; `run` without "
            "--workers is the embedded hub (in-process bus, every camera here)"
        )
    try:
        hub = Hub(loaded)
    except DetectorError as exc:
        print(f"detector error ({where}: detector.model): {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (SchemaError, SQLAlchemyError) as exc:
        print(f"database error ({where}: storage.database_url {mask_url(loaded.database_url)}): "
              f"{mask_url(str(exc))}", file=sys.stderr)  # fmt: skip
        return EXIT_CONFIG
    from shaobing.roles import run_embedded

    code = run_embedded(hub)  # returns once the hub has stopped
    _exit_stopped(code)


def _exit_stopped(code: int) -> NoReturn:
    """Exit now that the hub has stopped (threads joined, alerts stored, deliveries and
    the database closed). Python's own teardown of the native libraries (ONNX Runtime,
    OpenCV, FFmpeg, BLAS) and of every module takes seconds on a busy machine and does
    nothing the hub needs: a stop must take under 5 s (tests/integration/test_shutdown.py)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_role(start: Callable[[ModuleType], int]) -> int:
    """Run a distributed-mode role; a configuration it cannot run with exits 2."""
    from shaobing import roles

    try:
        return start(roles)
    except roles.RoleError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def cmd_role(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    role = args.command if args.command != "worker" else f"worker-{getattr(args, 'name', 'worker')}"
    _setup_logging(loaded, role)
    return _run_role(lambda roles: roles.run_role(
        args.command, loaded, name=getattr(args, "name", "worker"),
        metrics_port=getattr(args, "metrics_port", None), metrics_host=args.metrics_host,
    ))  # fmt: skip


def _open_db(loaded: LoadedConfig) -> tuple[Engine, sessionmaker[Session]]:
    """The database of a config, migrated; a clear error naming the setting if it fails."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.secrets import make_private_dir
    from shaobing.db import SchemaError, open_database

    make_private_dir(loaded.data_dir)  # the database and the secret key: owner only
    try:
        return open_database(loaded.database_url, loaded.backup_dir)
    except (SchemaError, SQLAlchemyError) as exc:
        where = loaded.path or "default config"
        url = mask_url(loaded.database_url)
        print(f"database error ({where}: storage.database_url {url}): {mask_url(str(exc))}",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(EXIT_CONFIG) from None


def cmd_users(args: argparse.Namespace) -> int:
    from shaobing import users_cli

    loaded = _load(args.config)
    engine, sessions = _open_db(loaded)
    try:
        return users_cli.run(args, sessions)
    finally:
        engine.dispose()


def cmd_replay(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    setup_logging("WARNING" if not args.verbose else "INFO")
    from analytics.detectors import DetectorError
    from shaobing.replay import replay

    out_path = Path(args.output)
    try:
        with out_path.open("w", encoding="utf-8") as out:
            result = replay(
                loaded, args.camera, Path(args.source), out,
                evidence_dir=Path(args.evidence_dir) if args.evidence_dir else None,
                start_ts=_parse_start(args.start, loaded.config.timezone) if args.start else None,
            )  # fmt: skip
    except (KeyError, FileNotFoundError, ValueError, DetectorError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        print(f"replay: {message}", file=sys.stderr)
        return EXIT_CONFIG
    if result.decode_problem:
        print(f"replay: warning: {args.source}: {result.decode_problem}", file=sys.stderr)
    print(json.dumps({
        "alerts": result.alerts, "frames_analysed": result.frames_analysed,
        "clip_seconds": round(result.clip_seconds, 2),
        "wall_seconds": round(result.wall_seconds, 2), "speed": round(result.speed, 2),
        "gated_share": round(result.gated_share, 3),
        "output": str(out_path),
    }))  # fmt: skip
    return 0


def _parse_start(value: str, timezone: str) -> float:
    import datetime as dt
    from zoneinfo import ZoneInfo

    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--start {value!r} is not an ISO 8601 time (2026-11-23T22:30)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone))
    return when.timestamp()


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    """Check a case export's signature and every file's hash (0 ok, 1 altered)."""
    import zipfile

    from alerts.export import verify_export
    from alerts.links import load_or_create_key

    loaded = _load(args.config)
    secret, key_path = loaded.config.api.link_secret, loaded.data_dir / "link.key"
    if not secret and not key_path.is_file():  # never make a new key just to verify
        print(f"no hub key: set api.link_secret or provide {key_path}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        result = verify_export(Path(args.file), load_or_create_key(secret, key_path))
    except (OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        print(f"{args.file}: not a readable export ({exc})", file=sys.stderr)
        return 1
    for problem in result.problems:
        print(f"ALTERED {problem}")
    if result.ok:
        print(f"{args.file}: OK (signature and {result.files} file(s) verified)")
        return 0
    return 1


def cmd_cameras_import(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    from analytics.config import CameraConfig
    from camera_registry.importer import ImportError_, load_camera_file
    from camera_registry.store import upsert_camera
    from core.secrets import load_or_create_cipher

    try:
        cameras = load_camera_file(Path(args.file), CameraConfig)
    except ImportError_ as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return EXIT_CONFIG
    engine, sessions = _open_db(loaded)
    # The hub's key (SHAOBING_SECRET_KEY or <data_dir>/secret.key): it must decrypt these.
    cipher = load_or_create_cipher(loaded.secret_key_path)
    with sessions.begin() as session:
        for cam in cameras:
            upsert_camera(session, cam, origin="import", cipher=cipher)
    engine.dispose()
    print(f"imported {len(cameras)} camera(s) from {args.file}")
    return 0


def cmd_cameras_list(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    from camera_registry.store import list_cameras
    from core.secrets import load_or_create_cipher

    engine, sessions = _open_db(loaded)
    cipher = load_or_create_cipher(loaded.secret_key_path)
    with sessions() as session:
        for rec in list_cameras(session):
            area = "/".join(x for x in (rec.county, rec.township, rec.village) if x)
            print(f"{rec.id}\t{rec.name}\t{rec.programme}\t{area}\t"
                  f"{mask_url(rec.source_display)}{_record_problem(rec, cipher)}")  # fmt: skip
    engine.dispose()
    return 0


def _record_problem(rec: CameraRecord, cipher: SecretCipher) -> str:
    """``\tinvalid_config: reason`` for a record the hub could not start, else ''."""
    from analytics.config import CameraConfig
    from camera_registry.store import invalid_config_error

    try:
        CameraConfig.model_validate(rec.config_data(cipher))
    except ValueError as exc:
        return f"\tinvalid_config: {invalid_config_error(exc)}"
    return ""


def cmd_cameras_probe(args: argparse.Namespace) -> int:

    from camera_registry.onvif_probe import OnvifProbeError, probe_onvif_sync

    if args.camera:
        loaded = _load(args.config)
        cams = {c.id: c for c in loaded.config.cameras}
        cam = cams.get(args.camera)
        if cam is None or cam.source.onvif is None:
            print(f"probe: camera {args.camera!r} is not an ONVIF camera in the config",
                  file=sys.stderr)  # fmt: skip
            return EXIT_CONFIG
        o = cam.source.onvif
        host, port, user, password, profile = o.host, o.port, o.username, o.password, o.profile
    else:
        if not args.host:
            print("probe: give --camera ID or --host HOST", file=sys.stderr)
            return EXIT_CONFIG
        host, port, user, profile = args.host, args.port, args.user, None
        password = os.environ.get(args.password_env) if args.password_env else None
    try:
        result = probe_onvif_sync(host, port, user, password, profile=profile,
                                  timeout=args.timeout)  # fmt: skip
    except OnvifProbeError as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(_probe_json(result), indent=2, ensure_ascii=False))
    return 0


def _probe_json(result: object) -> dict[str, object]:
    from dataclasses import asdict

    data = asdict(result)  # type: ignore[call-overload]
    return json.loads(mask_url(json.dumps(data)))  # type: ignore[no-any-return]


# -- parser -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shaobing", description="Shaobing (哨兵) analytics hub")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the hub: ingest, analytics, alerts, API")
    run.add_argument("--config", "-c", help="YAML config (default: the embedded defaults)")
    run.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="N worker processes + the other roles here (needs bus.kind: redis)",
    )
    run.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="with --workers: worker i serves /metrics on PORT+i")  # fmt: skip
    run.set_defaults(func=cmd_run)

    for role, what in (
        ("worker", "ingest + analytics + evidence for the cameras this worker holds a lease on"),
        ("alerts", "event consumer: alerts stored, routed and escalated"),
        ("dispatcher", "outbox delivery to the dispatch targets"),
        ("api", "REST API and console (its /metrics on the API port)"),
    ):
        rp = sub.add_parser(role, help=f"distributed mode: {what}")
        rp.add_argument("--config", "-c", required=True, help="YAML config (bus.kind: redis)")
        if role == "worker":
            rp.add_argument(
                "--name",
                default="worker",
                help="this worker's name on its host (its event spool folder)",
            )
        if role != "api":
            rp.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
        rp.add_argument("--metrics-host", default="127.0.0.1", help="address for /metrics")
        rp.set_defaults(func=cmd_role)

    check = sub.add_parser("check-config", help="validate a config file (exit 2 on errors)")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)

    rep = sub.add_parser("replay", help="run a recorded clip through the pipeline")
    rep.add_argument("--config", "-c", required=True)
    rep.add_argument("--camera", required=True, help="camera id in the config (zones, rules)")
    rep.add_argument("--source", required=True, help="video file")
    rep.add_argument("--output", "-o", required=True, help="alerts as JSON lines")
    rep.add_argument("--evidence-dir", help="also save snapshots here")
    rep.add_argument(
        "--start",
        help="wall-clock time of the clip's first frame (ISO 8601, hub time zone if none "
        "given): rule schedules then apply; without it they are ignored",
    )
    rep.add_argument("--verbose", "-v", action="store_true")
    rep.set_defaults(func=cmd_replay)

    cams = sub.add_parser("cameras", help="camera registry")
    csub = cams.add_subparsers(dest="cameras_command", required=True)
    imp = csub.add_parser("import", help="import cameras from YAML or CSV")
    imp.add_argument("file")
    imp.add_argument("--config", "-c")
    imp.set_defaults(func=cmd_cameras_import)
    lst = csub.add_parser("list", help="list registered cameras")
    lst.add_argument("--config", "-c")
    lst.set_defaults(func=cmd_cameras_list)
    probe = csub.add_parser("probe", help="query an ONVIF device: info, profiles, stream URIs")
    probe.add_argument("--config", "-c")
    probe.add_argument("--camera", help="an ONVIF camera id from the config")
    probe.add_argument("--host")
    probe.add_argument("--port", type=int, default=80)
    probe.add_argument("--user")
    probe.add_argument("--password-env", help="name of the environment variable with the password")
    probe.add_argument("--timeout", type=float, default=10.0)
    probe.set_defaults(func=cmd_cameras_probe)
    from linkage import discovery_cli  # issue 27: cameras discover --interface X

    discovery_cli.add_parser(csub)

    evidence = sub.add_parser("evidence", help="evidence: verify a case export")
    esub = evidence.add_subparsers(dest="evidence_command", required=True)
    verify = esub.add_parser("verify", help="check a case export zip (exit 1 if altered)")
    verify.add_argument("file", help="the export's .zip")
    verify.add_argument("--config", "-c", help="YAML config (the hub whose key signed it)")
    verify.set_defaults(func=cmd_evidence_verify)

    from shaobing import users_cli

    config_opt = argparse.ArgumentParser(add_help=False)
    config_opt.add_argument("--config", "-c", help="YAML config (its database)")
    users = users_cli.add_parser(sub, parents=[config_opt])
    users.set_defaults(func=cmd_users)
    from shaobing import doctor, models_cli

    models_cli.add_parser(sub, parents=[config_opt])  # shaobing models quantize
    doctor.add_parsers(sub)  # shaobing doctor, support-bundle
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "run":
        logging.basicConfig(level=logging.WARNING)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
