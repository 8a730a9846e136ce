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
    p = cameras.add_parser("discover", help="find ONVIF devices on one network interface "
                                            "(WS-Discovery; multicast on that interface only)")
    p.add_argument("--interface", "-i", required=True, help="e.g. eth1 (never another)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for answers")
    p.add_argument("--probe", action="store_true",
                   help="also probe each device over ONVIF (profiles, stream URIs)")
    p.add_argument("--user", help="ONVIF user for --probe")
    p.add_argument("--password-env", help="environment variable holding the --probe password")
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
        if args.probe:
            entry.update(_probe(device, args))
        out.append(entry)
    print(json.dumps(out, indent=2, ensure_ascii=False))
    print(f"discover: {len(out)} device(s) on {args.interface}", file=sys.stderr)
    return 0


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
