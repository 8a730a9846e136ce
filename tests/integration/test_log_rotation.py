"""The hub's log file (``logging.file``) rotates by size and never takes more than
(keep + 1) × max_mb; credentials are masked in it as on standard error; the distributed
roles write one file each; the support bundle takes the file and its rotated ones."""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from shaobing.cli import main, setup_logging
from shaobing.config import load_config

MIB = 1024 * 1024


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:], root.level = handlers, level


def test_the_log_file_rotates_with_a_cap(tmp_path: Path, restore_logging: None) -> None:
    log_file = tmp_path / "log" / "shaobing.log"
    setup_logging("INFO", log_file, max_mb=1, keep=2)
    log = logging.getLogger("shaobing.test")
    line = "camera rtsp://admin:hunter2-secret@10.0.0.5/main " + "x" * 950
    for _ in range(5 * 1024):  # about 5 MiB: rotated four times, two old files kept
        log.info(line)
    for handler in logging.getLogger().handlers:
        handler.flush()
    files = sorted(p.name for p in log_file.parent.iterdir())
    assert files == ["shaobing.log", "shaobing.log.1", "shaobing.log.2"]
    for f in log_file.parent.iterdir():
        assert f.stat().st_size <= 1 * MIB
        text = f.read_text(encoding="utf-8")
        assert "hunter2-secret" not in text and "rtsp://***@10.0.0.5/main" in text


def test_roles_write_their_own_file_and_the_support_bundle_takes_them(
    tmp_path: Path, restore_logging: None
) -> None:
    cfg = {"data_dir": str(tmp_path / "data"), "cameras": [],
           "logging": {"file": "logs/shaobing.log", "max_mb": 5, "keep": 3}}  # fmt: skip
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    loaded = load_config(str(path))
    assert loaded.log_file() == tmp_path / "logs" / "shaobing.log"  # relative: the config's folder
    assert loaded.log_file("worker-w1") == tmp_path / "logs" / "shaobing-worker-w1.log"
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "shaobing.log").write_text("now\n")
    (tmp_path / "logs" / "shaobing.log.1").write_text("before\n")
    out = tmp_path / "support.tar.gz"
    assert main(["support-bundle", "-c", str(path), "-o", str(out)]) == 0
    with tarfile.open(out) as tar:
        names = {m.name.split("/", 1)[1] for m in tar.getmembers()}
    assert {"logs/shaobing.log", "logs/shaobing.log.1"} <= names
