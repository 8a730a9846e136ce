"""Public footage for the evaluation: the manifest ``eval/footage.yaml``, and fetching the clips
(the project never holds footage: clips are fetched into a cache, like ../shared/assets).

    .venv/bin/python -m eval.footage list                       # every clip and where it is
    .venv/bin/python -m eval.footage fetch [NAME ...] [--mirror DIR]
    .venv/bin/python -m eval.footage verify                     # re-hash what is here

Every clip of the manifest has a name, its source (repository, commit, path, raw URL), licence,
SHA-256 and what is in it. Every clip is fetched by name, as published, into the git-ignored
``eval/.cache/footage/``:

- ``--mirror DIR``: copied from a local directory (the air-gapped video network: carry the files
  over once), where it is looked up as ``DIR/NAME``, then ``DIR/<repo owner>+<repo name>/<path>``,
  then ``DIR/<basename of path>``;
- otherwise downloaded from the source's raw URL (pinned to the commit).

Either way the bytes must match the manifest's SHA-256, or the clip is refused (nothing is
written). Scenarios name such clips ``footage:NAME``; when a clip is absent the evaluation
reports the scenario NOT AVAILABLE (not a failure) and says how to fetch it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from analytics.models import sha256_file

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "eval" / "footage.yaml"
FETCHED_DIR = ROOT / "eval" / ".cache" / "footage"
PREFIX = "footage:"

STATUSES = ("fetched",)  # the project redistributes no footage
CLIP_KEYS = {
    "name",
    "status",
    "source",
    "licence",
    "attribution",
    "original",
    "transform",
    "file",
    "video",
    "content",
    "notes",
}
SOURCE_KEYS = {"repo", "commit", "path", "url"}
FILE_KEYS = {"size", "md5", "sha256"}


class FootageError(RuntimeError):
    pass


def load_manifest(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The manifest's clips by name, checked (raises FootageError naming every problem)."""
    path = path or MANIFEST
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FootageError(f"{path}: {exc}") from None
    problems: list[str] = []
    clips: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(data.get("clips") or []):
        where = f"{path.name}: clips[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            problems.append(f"{where}: needs a name")
            continue
        name = c["name"]
        where += f"({name})"
        if "/" in name or "\\" in name or name.startswith("."):
            problems.append(f"{where}: name must be a plain file name")
        if name in clips:
            problems.append(f"{where}: duplicate name")
        if set(c) - CLIP_KEYS:
            problems.append(f"{where}: unknown key(s) {sorted(set(c) - CLIP_KEYS)}")
        if c.get("status") not in STATUSES:
            problems.append(f"{where}: status must be one of {', '.join(STATUSES)}")
        src = c.get("source")
        if not isinstance(src, dict) or set(src) != SOURCE_KEYS:
            problems.append(f"{where}: source needs exactly {sorted(SOURCE_KEYS)}")
        elif not str(src["url"]).startswith("https://raw.githubusercontent.com/"):
            problems.append(f"{where}: source.url must be a raw GitHub URL")
        elif len(str(src["commit"])) != 40:
            problems.append(f"{where}: source.commit must be a full 40-digit commit")
        for key in ("file", "original"):
            f = c.get(key)
            if not isinstance(f, dict) or set(f) != FILE_KEYS:
                problems.append(f"{where}: {key} needs exactly {sorted(FILE_KEYS)}")
            elif len(str(f["sha256"])) != 64 or len(str(f["md5"])) != 32:
                problems.append(f"{where}: {key}: bad sha256/md5")
        if not c.get("licence"):
            problems.append(f"{where}: needs licence (or 'none stated')")
        if c.get("status") == "fetched" and isinstance(c.get("file"), dict):
            # A fetched clip is the source file itself, so that the URL can be verified.
            if c.get("transform") not in (None, "none") or c["file"] != c.get("original"):
                problems.append(f"{where}: a fetched clip is the original file, untransformed")
        if not c.get("content"):
            problems.append(f"{where}: needs content (what the frames show)")
        clips[name] = c
    if problems:
        raise FootageError("\n".join(problems))
    return clips


def _shown(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def local_path(clip: dict[str, Any]) -> Path:
    return FETCHED_DIR / clip["name"]


def resolve(
    name: str, manifest: dict[str, dict[str, Any]] | None = None
) -> tuple[Path | None, str]:
    """(path, '') when the clip is here and intact, else (None, why it is not available)."""
    if name.startswith(PREFIX):
        name = name[len(PREFIX) :]
    clips = manifest if manifest is not None else load_manifest()
    clip = clips.get(name)
    if clip is None:
        return None, f"{name!r} is not in {MANIFEST.name}"
    p = local_path(clip)
    if not p.is_file():
        return None, (
            f"fetched clip {name} is not in {_shown(FETCHED_DIR)}; run "
            f"`python -m eval.footage fetch {name} [--mirror DIR]`"
        )
    if p.stat().st_size != clip["file"]["size"] or sha256_file(p) != clip["file"]["sha256"]:
        return None, f"{p} does not match its SHA-256 in {MANIFEST.name} (refetch it)"
    return p, ""


def _mirror_candidates(clip: dict[str, Any], mirror: Path) -> list[Path]:
    src = clip["source"]
    return [
        mirror / clip["name"],
        mirror / src["repo"].replace("/", "+") / src["path"],
        mirror / Path(src["path"]).name,
    ]


Opener = Callable[[str], Any]


def fetch(
    name: str,
    mirror: Path | None = None,
    manifest: dict[str, dict[str, Any]] | None = None,
    opener: Opener | None = None,
    dest_dir: Path | None = None,
) -> Path:
    """Fetch one clip into the cache, verified against its SHA-256; raises FootageError."""
    clips = manifest if manifest is not None else load_manifest()
    clip = clips.get(name)
    if clip is None:
        raise FootageError(f"{name!r} is not in the manifest")
    dest_dir = dest_dir or FETCHED_DIR
    dest = dest_dir / name
    want = clip["file"]["sha256"]
    if dest.is_file() and sha256_file(dest) == want:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if mirror is not None:
                found = next((p for p in _mirror_candidates(clip, mirror) if p.is_file()), None)
                if found is None:
                    raise FootageError(
                        f"{name}: not in mirror {mirror} (looked for "
                        + ", ".join(str(p) for p in _mirror_candidates(clip, mirror))
                        + ")"
                    )
                with found.open("rb") as f:
                    shutil.copyfileobj(f, out)
                origin = str(found)
            else:
                url = clip["source"]["url"]
                with (opener or urllib.request.urlopen)(url) as resp:
                    shutil.copyfileobj(resp, out)
                origin = url
        got = sha256_file(tmp)
        if got != want:
            raise FootageError(
                f"{name}: SHA-256 mismatch from {origin}: got {got}, manifest says {want}; refused"
            )
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.footage", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="every clip of the manifest and whether it is here")
    f = sub.add_parser("fetch", help="fetch clips (default: every clip not yet here)")
    f.add_argument("names", nargs="*")
    f.add_argument("--mirror", metavar="DIR", help="copy from this local directory, no network")
    sub.add_parser("verify", help="re-hash every clip that is here")
    args = p.parse_args(argv)
    try:
        clips = load_manifest()
    except FootageError as exc:
        print(f"manifest error:\n{exc}", file=sys.stderr)
        return 2
    if args.cmd == "list":
        for name, c in clips.items():
            path, why = resolve(name, clips)
            state = "here" if path else "NOT AVAILABLE"
            print(
                f"{name:<34} {c['status']:<9} {c['licence']:<16} {state}"
                + (f" ({why})" if why else "")
            )
        return 0
    if args.cmd == "verify":
        bad = 0
        for name in clips:
            path, why = resolve(name, clips)
            if path is None and "does not match" in why:
                bad += 1
                print(f"BAD  {name}: {why}")
            elif path is not None:
                print(f"ok   {name}")
        return 1 if bad else 0
    names = args.names or list(clips)
    mirror = Path(args.mirror).expanduser() if args.mirror else None
    failed = 0
    for name in names:
        try:
            path = fetch(name, mirror=mirror, manifest=clips)
            print(f"ok   {name} -> {path}")
        except (FootageError, OSError) as exc:
            failed += 1
            print(f"FAIL {name}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
