"""No file of the project names a path of the machine it was written on: a clone
elsewhere (``../shared`` beside it, or ``$SHAOBING_ASSETS``) must find everything."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from core.assets import ROOT

#: Absolute paths of this workplace's machines, and of the checkout the tests run in.
MACHINE_PATHS = re.compile(r"(?<![\w.])/(?:work|home/\w+|root)/[\w.-]+")


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                         check=True).stdout  # fmt: skip
    files = []
    for name in out.decode().split("\0"):
        path = ROOT / name
        if name and path.is_file() and path.suffix not in {".png", ".jpg", ".mp4", ".onnx",
                                                           ".xlsx", ".zip", ".woff2"}:  # fmt: skip
            files.append(path)
    return files


def test_no_absolute_path_of_a_development_machine_in_the_tree() -> None:
    checkout = str(ROOT)
    found = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if checkout in line or MACHINE_PATHS.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not found, "absolute machine paths (use core.assets / ../shared):\n" + "\n".join(found)


def test_the_pattern_catches_what_it_is_for() -> None:
    root = "/"  # written apart, so that this file does not hold what it looks for
    assert MACHINE_PATHS.search(f'ASSETS = Path("{root}work/shared/assets")')
    assert MACHINE_PATHS.search(f"see {root}root/.cache/x")
    assert not MACHINE_PATHS.search("../shared/assets/videos")
    assert not MACHINE_PATHS.search("http://127.0.0.1:8080/work/queue")
