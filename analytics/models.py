"""Model provisioning: find a model file by path or by name, from the models
directory, a local mirror (an air-gapped video network's file share), or a
download URL, always checked against its SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from analytics.detectors.base import DetectorError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnownModel:
    name: str
    sha256: str
    url: str
    backend: str


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            "yolox_nano.onnx",
            "e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd",
            "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx",
            "onnx",
        ),
    )
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_model(
    spec: str,
    models_dir: Path,
    *,
    mirror_dir: Path | None = None,
    sha256: str | None = None,
    allow_download: bool = True,
) -> Path:
    """Return the local path of model ``spec`` (a path or a known name).

    Order: an existing path; ``models_dir/name``; ``mirror_dir/name`` (copied into
    ``models_dir``); the known model's download URL. Files of known models, or with
    an explicit ``sha256``, are verified; a mismatch is an error, never a warning.
    """
    path = Path(spec).expanduser()
    name = path.name
    expected = sha256 or (KNOWN_MODELS[name].sha256 if name in KNOWN_MODELS else None)
    candidates = [path] if path.is_absolute() or len(path.parts) > 1 else []
    candidates.append(models_dir / name)
    for candidate in candidates:
        if candidate.is_file():
            _verify(candidate, expected)
            return candidate
    if mirror_dir is not None and (mirror_dir / name).is_file():
        models_dir.mkdir(parents=True, exist_ok=True)
        _verify(mirror_dir / name, expected)
        shutil.copy2(mirror_dir / name, models_dir / name)
        log.info("model %s copied from mirror %s", name, mirror_dir)
        return models_dir / name
    known = KNOWN_MODELS.get(name)
    if known is not None and allow_download:
        return _download(known, models_dir)
    looked = ", ".join(str(c) for c in candidates)
    if mirror_dir is not None:
        looked += f", {mirror_dir / name}"
    raise DetectorError(
        f"model file {spec!r} not found (looked in {looked}); put the file there, set "
        "detector.mirror_dir to a directory holding it, or name a known model "
        f"({', '.join(KNOWN_MODELS)})"
    )


def _verify(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise DetectorError(
            f"model file {path} has SHA-256 {actual}, expected {expected}: "
            "the file is corrupt or not the model named"
        )


def _download(model: KnownModel, models_dir: Path) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / model.name
    log.info("downloading model %s from %s", model.name, model.url)
    try:
        with tempfile.NamedTemporaryFile(dir=models_dir, delete=False) as tmp:
            with urllib.request.urlopen(model.url, timeout=60) as resp:  # noqa: S310
                shutil.copyfileobj(resp, tmp)
        tmp_path = Path(tmp.name)
        _verify(tmp_path, model.sha256)
        tmp_path.replace(target)
    except OSError as exc:
        Path(tmp.name).unlink(missing_ok=True)
        raise DetectorError(
            f"model {model.name} is not in {models_dir} and could not be downloaded "
            f"({exc}); on a network without internet set detector.mirror_dir"
        ) from exc
    except DetectorError:
        Path(tmp.name).unlink(missing_ok=True)
        raise
    return target
