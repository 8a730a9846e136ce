"""The console's vocabulary module is generated from the Python one, never edited."""

from __future__ import annotations

from pathlib import Path

from api.vocabulary_ts import render
from core.vocabulary import ALERT_TYPES

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console" / "src"


def test_the_committed_vocabulary_is_what_python_says() -> None:
    committed = (CONSOLE / "api" / "vocabulary.ts").read_text(encoding="utf-8")
    assert committed == render(), (
        "console/src/api/vocabulary.ts is out of date: "
        "run python -m api.vocabulary_ts console/src/api/vocabulary.ts"
    )


def test_no_vue_file_lists_the_alert_types_by_hand() -> None:
    # three alert types quoted side by side is a hand-copied list
    needle = ", ".join(f"'{t}'" for t in ALERT_TYPES[2:4])
    offenders = [
        str(p.relative_to(ROOT))
        for p in CONSOLE.rglob("*.vue")
        if needle in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
