"""A CJK font for labels drawn on evidence pictures (Chinese needs more than OpenCV's
Hershey fonts). Debian's fonts-wqy-microhei is what the project installs
(scripts/test.sh, the offline bundle); any other CJK font fontconfig knows will do.
Without one, labels fall back to Latin text drawn by OpenCV (and a warning is logged
once)."""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

KNOWN_PATHS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


@functools.cache
def cjk_font_path() -> Path | None:
    """The file of a font with Chinese glyphs, or None when the machine has none."""
    for known in KNOWN_PATHS:
        if Path(known).is_file():
            return Path(known)
    if shutil.which("fc-match"):
        try:
            found = subprocess.run(
                ["fc-match", "-f", "%{file}", ":lang=zh-cn"],
                capture_output=True, text=True, timeout=5, check=False,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            found = ""
        # fc-match always answers; only a CJK family is of use
        if found and any(k in found.lower() for k in ("wqy", "cjk", "droid", "hei", "song")):
            return Path(found)
    log.warning("no CJK font found (install fonts-wqy-microhei): evidence labels in Latin text")
    return None
