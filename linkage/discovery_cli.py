"""``shaobing cameras discover --interface X``: WS-Discovery on one interface, each
device found optionally probed over ONVIF (identity, profiles, stream URIs)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def add_parser(cameras: Any) -> None:
    """Add ``discover`` to the ``cameras`` subcommands."""
    p = cameras.add_parser(
        "discover",
        help="find ONVIF devices on one network interface "
        "(WS-Discovery; multicast on that interface only)",
    )
    p.add_argument("--interface", "-i", required=True, help="e.g. eth1 (never another)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for answers")
    p.add_argument(
        "--probe",
        action="store_true",
        help="also probe each device over ONVIF (profiles, stream URIs)",
    )
    p.add_argument("--user", help="ONVIF user for --probe")
    p.add_argument("--password-env", help="environment variable holding the --probe password")
    p.add_argument(
        "--add",
        action="store_true",
        help="register each device that answers the probe as an ONVIF camera",
    )
    p.add_argument("--config", "-c", help="the hub's config (its database) for --add")
    p.add_argument("--area", default="", help="area of the added cameras: 示例县/城关镇[/村]")
    p.add_argument("--id-prefix", default="onvif-", help="camera id = prefix + device uuid tail")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from linkage.discovery import DiscoveryError, discover

    try:
        devices = discover(args.interface, timeout_s=args.timeout)
    except (DiscoveryError, OSError) as exc:
        print(f"discover: {exc}", file=sys.stderr)
        return 2
    out = []
    for device in devices:
        entry: dict[str, Any] = device.to_dict()
        if args.probe or args.add:
            entry.update(_probe(device, args))
        out.append(entry)
    added = _add(devices, out, args) if args.add else []
    print(json.dumps(out, indent=2, ensure_ascii=False))
    print(
        f"discover: {len(out)} device(s) on {args.interface}"
        + (f", added: {', '.join(added) or 'none'}" if args.add else ""),
        file=sys.stderr,
    )
    return 0


def camera_data(device: Any, entry: dict[str, Any], args: argparse.Namespace,
                password: str | None) -> dict[str, Any]:  # fmt: skip
    """The camera config of a discovered device (validated by the caller)."""
    host, port = device.onvif_host_port
    tail = device.endpoint.rsplit(":", 1)[-1].replace("-", "")[-12:] or host.replace(".", "-")
    parts = [p for p in args.area.split("/") if p]
    area = dict(zip(("county", "township", "village", "grid"), parts, strict=False))
    name = device.name or device.model or (entry.get("probe") or {}).get("model") or host
    onvif: dict[str, Any] = {"host": host, "port": port}
    if args.user:
        onvif.update(username=args.user, password=password or "")
    return {"id": f"{args.id_prefix}{tail}", "name": name, "area": area,
            "source": {"onvif": onvif}}  # fmt: skip


def _add(devices: list[Any], out: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """Register the devices whose ONVIF probe succeeded; their ids."""
    from analytics.config import CameraConfig
    from camera_registry.store import upsert_camera
    from core.secrets import load_or_create_cipher
    from shaobing.cli import _load, _open_db

    loaded = _load(args.config)
    password = os.environ.get(args.password_env) if args.password_env else None
    engine, sessions = _open_db(loaded)
    cipher = load_or_create_cipher(loaded.secret_key_path)
    added = []
    try:
        with sessions.begin() as session:
            for device, entry in zip(devices, out, strict=True):
                if "probe" not in entry or device.onvif_host_port is None:
                    entry["added"] = False  # the probe failed: nothing is registered blind
                    continue
                try:
                    cam = CameraConfig.model_validate(camera_data(device, entry, args, password))
                except ValueError as exc:
                    entry["added"], entry["add_error"] = False, str(exc).splitlines()[0]
                    continue
                upsert_camera(session, cam, origin="discovery", cipher=cipher)
                entry["added"], entry["camera_id"] = True, cam.id
                added.append(cam.id)
    finally:
        engine.dispose()
    return added


def _probe(device: Any, args: argparse.Namespace) -> dict[str, Any]:
    from camera_registry.onvif_probe import OnvifProbeError, probe_onvif_sync
    from camera_registry.urls import mask_url

    target = device.onvif_host_port
    if target is None:
        return {"probe_error": "the device gave no ONVIF address"}
    password = os.environ.get(args.password_env) if args.password_env else None
    try:
        result = probe_onvif_sync(target[0], target[1], args.user, password, timeout=10.0)
    except OnvifProbeError as exc:
        return {"probe_error": str(exc)}
    from dataclasses import asdict

    return {"probe": json.loads(mask_url(json.dumps(asdict(result), ensure_ascii=False)))}
