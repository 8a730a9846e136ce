"""The public-footage manifest of the evaluation (eval/footage.yaml) and eval/footage.py: fast,
no network, no replay."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest

from eval import footage
from eval import run as eval_run


def test_manifest_is_valid_and_the_project_holds_no_footage() -> None:
    clips = footage.load_manifest()
    assert clips, "the manifest lists clips"
    for c in clips.values():
        # Fetched as published: the URL pinned to a commit can be checked against the hash.
        assert c["status"] == "fetched" and c["file"] == c["original"], c["name"]
        assert footage.local_path(c).is_relative_to(footage.FETCHED_DIR)
    # Clips live in the git-ignored cache, never in the tree.
    cache = footage.ROOT / "eval" / ".cache"
    assert all(p.is_relative_to(cache) for p in (footage.ROOT / "eval").rglob("*.mp4"))


def test_public_scenarios_name_clips_of_the_manifest() -> None:
    clips = footage.load_manifest()
    suite = eval_run.load_scenarios(eval_run.PUBLIC_SCENARIOS)
    for sc in suite["scenarios"]:
        assert sc["clip"].startswith(footage.PREFIX), sc["name"]
        assert sc["clip"][len(footage.PREFIX) :] in clips, sc["name"]
    # The default load runs both files, without clashing names.
    both = eval_run.load_scenarios()
    assert len(both["scenarios"]) == len(suite["scenarios"]) + len(
        eval_run.load_scenarios(eval_run.DEFAULT_SCENARIOS)["scenarios"]
    )


def _fake_manifest(content: bytes) -> dict[str, dict]:
    h = {
        "size": len(content),
        "md5": hashlib.md5(content).hexdigest(),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    return {
        "x.mp4": {
            "name": "x.mp4",
            "status": "fetched",
            "source": {
                "repo": "o/r",
                "commit": "0" * 40,
                "path": "v/x.mp4",
                "url": "https://raw.githubusercontent.com/o/r/" + "0" * 40 + "/v/x.mp4",
            },
            "licence": "none stated",
            "original": dict(h),
            "file": dict(h),
            "content": "test",
        }
    }


def test_fetch_from_mirror_verifies_and_refuses_a_mismatch(tmp_path: Path) -> None:
    good = b"real clip bytes"
    manifest = _fake_manifest(good)
    mirror = tmp_path / "mirror"
    (mirror / "o+r" / "v").mkdir(parents=True)
    dest = tmp_path / "cache"
    # Wrong bytes in the mirror: refused, nothing written.
    (mirror / "o+r" / "v" / "x.mp4").write_bytes(b"tampered clip bytes")
    with pytest.raises(footage.FootageError, match="SHA-256 mismatch"):
        footage.fetch("x.mp4", mirror=mirror, manifest=manifest, dest_dir=dest)
    assert not (dest / "x.mp4").exists()
    assert list(dest.iterdir()) == []  # no temporary file left behind
    # The right bytes: accepted.
    (mirror / "o+r" / "v" / "x.mp4").write_bytes(good)
    out = footage.fetch("x.mp4", mirror=mirror, manifest=manifest, dest_dir=dest)
    assert out.read_bytes() == good


def test_fetch_by_url_uses_the_opener_and_verifies(tmp_path: Path) -> None:
    import io

    manifest = _fake_manifest(b"abc")
    seen: list[str] = []

    def opener(url: str) -> io.BytesIO:
        seen.append(url)
        return io.BytesIO(b"abd")

    with pytest.raises(footage.FootageError, match="mismatch"):
        footage.fetch("x.mp4", manifest=manifest, opener=opener, dest_dir=tmp_path)
    assert seen == [manifest["x.mp4"]["source"]["url"]]
    assert not (tmp_path / "x.mp4").exists()


def test_missing_fetched_clip_is_not_available(tmp_path: Path, monkeypatch) -> None:
    manifest = _fake_manifest(b"abc")
    monkeypatch.setattr(footage, "FETCHED_DIR", tmp_path / "empty")
    path, why = footage.resolve("footage:x.mp4", manifest)
    assert path is None and "eval.footage fetch" in why
    # A corrupt local copy is not available either.
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.mp4").write_bytes(b"abd")
    path, why = footage.resolve("x.mp4", manifest)
    assert path is None and "SHA-256" in why
    # The evaluation reports such a scenario NOT AVAILABLE, not as a failure or not runnable.
    monkeypatch.setattr(footage, "load_manifest", lambda path=None: manifest)
    sc = {
        "name": "s",
        "clip": "footage:x.mp4",
        "transform": "forward",
        "normal": True,
        "zones": [],
        "rules": [{"name": "d", "type": "person_down"}],
        "expect": [],
    }
    r = eval_run.run_scenario(sc, {}, None)
    assert r.status == eval_run.NOT_AVAILABLE
    assert "fetch" in (r.error or "")
    table = eval_run.metrics([r])
    assert table["person_down"]["not_available"] == 1
    assert table["person_down"]["not_runnable"] == 0
    assert table["person_down"]["scenarios"] == 0


def test_manifest_rejects_a_bad_entry(tmp_path: Path) -> None:
    import yaml

    clips = copy.deepcopy(list(footage.load_manifest().values()))
    clips[0]["status"] = "borrowed"
    del clips[1]["content"]
    p = tmp_path / "footage.yaml"
    p.write_text(yaml.safe_dump({"clips": clips}), encoding="utf-8")
    with pytest.raises(footage.FootageError) as exc:
        footage.load_manifest(p)
    assert "status" in str(exc.value) and "content" in str(exc.value)
