"""Where the shared assets are (real clips and the detector model): ``$SHAOBING_ASSETS``,
else ``../shared/assets`` beside the checkout. One function for the tests, the eval and
the benchmarks, so that no path of a development machine is written anywhere."""

from __future__ import annotations

import os
from pathlib import Path

#: The checkout's root (the folder holding ``core/``).
ROOT = Path(__file__).resolve().parents[1]


def assets_dir() -> Path:
    """``$SHAOBING_ASSETS`` or ``<checkout>/../shared/assets`` (``videos/``, ``models/``)."""
    env = os.environ.get("SHAOBING_ASSETS")
    return Path(env).expanduser().resolve() if env else ROOT.parent / "shared" / "assets"
