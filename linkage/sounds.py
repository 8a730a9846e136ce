"""Recorded warnings shipped with the project (``linkage/sounds/<key>.wav``): the common
warnings of :data:`~linkage.config.DEFAULT_WARNINGS`, spoken by the project's own offline
TTS (espeak-ng's Mandarin voice through ``espeakng-loader``), stored as 8 kHz G.711 A-law
WAV (what the speakers are sent anyway; ~8 KB a second). A warning refers to one as
``file: builtin:<key>``; a site replaces it with a real recording by giving its own file.

Made with ``python -m linkage.sounds`` (writes into ``linkage/sounds/``, or ``--out DIR``);
tests/integration/test_linkage_sounds.py checks each file says its warning. The audio is
the output of espeak-ng (GPL-3.0) run on our texts; it carries no part of the program and
is shipped under the project's licence (Apache-2.0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from linkage.config import BUILTIN_TEXTS
from linkage.g711 import RATE, g711_wav_bytes, resample
from linkage.tts import MandarinTts

SOUNDS_DIR = Path(__file__).resolve().parent / "sounds"
BUILTIN = "builtin:"

TEXTS = BUILTIN_TEXTS


def builtin_path(file: str) -> Path | None:
    """The shipped file a ``builtin:<key>`` reference names (None: not such a reference)."""
    if not file.startswith(BUILTIN):
        return None
    return SOUNDS_DIR / f"{file[len(BUILTIN) :]}.wav"


def generate(out: Path = SOUNDS_DIR, tts: MandarinTts | None = None) -> list[Path]:
    """Speak every text of :data:`TEXTS` and write ``<key>.wav`` (A-law, 8 kHz) in ``out``."""
    tts = tts or MandarinTts()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, text in TEXTS.items():
        speech = tts.speak(text)
        path = out / f"{key}.wav"
        path.write_bytes(g711_wav_bytes(resample(speech.samples, speech.rate, RATE)))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the shipped warning recordings")
    parser.add_argument("--out", type=Path, default=SOUNDS_DIR)
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
