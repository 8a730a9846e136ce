"""Cached replay for the eval: the hub's own replay with the detector's answers remembered.

    python -m eval.detcache --config CFG --camera eval --source CLIP --output OUT.jsonl
                            --cache FILE.npz [--evidence-dir DIR]

The detector is by far the dearest part of a replay. Its answer depends only on the image
handed to it (a whole analysed frame or a native-resolution crop) and on the detector's
settings, so :class:`CachingDetector` keys each answer by a hash of the image bytes and keeps
them in one ``.npz`` file per (clip, detector settings), written by ``eval/run.py`` into the
git-ignored ``eval/.cache/det/``. A rule change that asks for other crops simply misses the
cache there and runs the detector; the results are bit for bit those of an uncached replay
(the same detections, the same tracker, rules and cooldown). ``--no-cache`` on
``eval.run`` turns it off; deleting the folder empties it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from analytics.detectors.base import Detector
from analytics.types import Detections


class CachingDetector:
    """Wraps a detector; answers an image it has seen from memory (keyed by its bytes)."""

    def __init__(self, inner: Detector, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.input_size = inner.input_size
        self.class_names = inner.class_names
        self.path = path
        self.hits = 0
        self.misses = 0
        self._store: dict[str, np.ndarray] = {}
        self._dirty = False
        if path.is_file():
            try:
                with np.load(path) as data:
                    self._store = {k: data[k] for k in data.files}
            except (OSError, ValueError):  # a torn file: start again
                self._store = {}

    @staticmethod
    def key(image: np.ndarray) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((image.shape, str(image.dtype))).encode())
        h.update(np.ascontiguousarray(image).data)
        return h.hexdigest()

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        out: list[Detections | None] = [None] * len(images)
        missing: list[int] = []
        keys = [self.key(img) for img in images]
        for i, k in enumerate(keys):
            row = self._store.get(k)
            if row is None:
                missing.append(i)
                continue
            self.hits += 1
            out[i] = _from_row(row)
        if missing:
            self.misses += len(missing)
            found = self.inner.detect([images[i] for i in missing])
            for i, det in zip(missing, found, strict=True):
                out[i] = det
                self._store[keys[i]] = _to_row(det)
                self._dirty = True
        return [d if d is not None else Detections.empty() for d in out]

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
        os.close(fd)
        np.savez(tmp, **self._store)  # type: ignore[arg-type]
        os.replace(tmp, self.path)


def _to_row(det: Detections) -> np.ndarray:
    """One image's answer as an (N, 7) array: box, score, class, and 1 for a weak box."""
    parts = [(det, 0.0)] + ([(det.weak, 1.0)] if det.weak is not None else [])
    return np.concatenate(
        [
            np.concatenate(
                [
                    d.xyxy.astype(np.float32),
                    d.confidence.astype(np.float32)[:, None],
                    d.class_id.astype(np.float32)[:, None],
                    np.full((len(d), 1), flag, dtype=np.float32),
                ],
                axis=1,
            ).reshape(-1, 7)
            for d, flag in parts
        ]
    )


def _from_row(row: np.ndarray) -> Detections:
    strong = row[:, 6] == 0
    out = Detections(row[strong, :4], row[strong, 4], row[strong, 5].astype(np.int64))
    if not strong.all():
        weak = row[~strong]
        out.weak = Detections(weak[:, :4], weak[:, 4], weak[:, 5].astype(np.int64))
    return out


#: bumped when what a cache file holds changes (2: weak boxes, issue 25)
CACHE_VERSION = 2


def cache_name(clip: Path, detector: dict[str, object]) -> str:
    """The cache file of a clip and detector settings (the clip by its size and mtime)."""
    st = clip.stat()
    spec = json.dumps(
        {"clip": str(clip.resolve()), "size": st.st_size, "mtime": int(st.st_mtime),
         "detector": detector, "version": CACHE_VERSION},
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(spec.encode()).hexdigest()[:24] + ".npz"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.detcache")
    p.add_argument("--config", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--evidence-dir")
    args = p.parse_args(argv)
    from analytics.detectors import DetectorError, create_detector
    from shaobing.cli import EXIT_CONFIG, _load
    from shaobing.replay import replay

    loaded = _load(args.config)
    try:
        inner = create_detector(loaded.config.detector, loaded.models_dir, loaded.mirror_dir)
        det = CachingDetector(inner, Path(args.cache))
        with Path(args.output).open("w", encoding="utf-8") as out:
            result = replay(
                loaded, args.camera, Path(args.source), out, detector=det,
                evidence_dir=Path(args.evidence_dir) if args.evidence_dir else None,
            )  # fmt: skip
    except (KeyError, FileNotFoundError, ValueError, DetectorError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        print(f"replay: {message}", file=sys.stderr)
        return EXIT_CONFIG
    det.save()
    if result.decode_problem:
        print(f"replay: warning: {args.source}: {result.decode_problem}", file=sys.stderr)
    print(json.dumps({
        "alerts": result.alerts, "frames_analysed": result.frames_analysed,
        "clip_seconds": round(result.clip_seconds, 2),
        "wall_seconds": round(result.wall_seconds, 2), "speed": round(result.speed, 2),
        "gated_share": round(result.gated_share, 3), "cache_hits": det.hits,
        "cache_misses": det.misses, "output": args.output,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
