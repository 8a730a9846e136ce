"""Deterministic clip transformations, built once with the ffmpeg CLI into ``eval/.cache``.

A transform spec, as written in ``scenarios.yaml``:

* ``forward`` — no transformation: the original file is replayed as it is (not re-encoded);
* ``reverse`` — the clip played backwards;
* ``{pingpong: {repeats: N}}`` — forward then reversed, N times (default 1);
* ``{freeze: {at: S, duration: D}}`` — at S seconds the picture stops: the frame shown at S
  is held for D seconds (inserted: the clip gets D seconds longer), then the clip goes on;
* ``{black: {at: S, duration: D}}`` — D seconds of black picture inserted at S;
* ``{slow: {factor: F}}`` — slow motion: every frame shown F times as long (frames repeated
  at the native frame rate);
* ``{night: {level: L, noise: N, glare: G}}`` — night footage: luma scaled by L (0..1)
  (with ``glare``, luma above G is kept: headlights, lamps and what they light), colour
  mostly drained, grain of strength N (fixed seed, so deterministic);
* ``{concat: [spec, spec, ...]}`` — the transformed clips one after another;
* ``mirror`` — flipped left to right;
* ``{inset: {scale: K, canvas: [W, H], x: X, y: Y}}`` — the clip shrunk by K and placed on a
  grey W x H canvas, its top-left at X, Y (0..1 of the free space): far, small objects in a
  larger native frame (a far-field camera);
* ``{stack: {size: [W, H], parts: [spec, ...]}}`` — the parts scaled to width W, one above
  the other, padded or cut to H (a portrait frame packed with people);
* ``{paste: {from: T, rect: [x, y, w, h], angle: A, scale: K, at: S, duration: D, x: X, y: Y,
  base: spec}}`` — the patch ``rect`` (0..1) of the source's frame at T, rotated by A degrees
  and scaled by K, laid over ``base`` (default ``forward``) at X, Y (0..1, its top-left) from S
  to S + D (a person lying still).

Every output is H.264 (libx264, ``-g 25``, yuv420p) at the source's native size (``inset``,
``stack``: the size given) and average frame rate, re-timed to a constant frame rate starting
at 0. The cache key is the SHA-256 of
the source file plus the canonical spec, so a changed clip or spec builds a new file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

# Bump when the encoding below changes: it is part of every cache key.
ENCODING_VERSION = 1
ENCODE_ARGS = [
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-crf",
    "18",
    "-g",
    "25",
    "-pix_fmt",
    "yuv420p",
    "-an",
    "-threads",
    "2",
    "-map_metadata",
    "-1",
    "-fflags",
    "+bitexact",
    "-flags:v",
    "+bitexact",
]

PRIMITIVES = (
    "forward", "reverse", "pingpong", "freeze", "black", "slow", "night", "fault", "concat",
    "mirror", "inset", "stack", "paste",
)  # fmt: skip

# Picture faults (视频质量诊断) made with FFmpeg filters over a segment of the clip, the
# way they happen to a real camera: defocus or a wet/fogged lens, a hand or a bag over most
# of the lens, a failing colour channel, a failing sensor, the camera knocked to another view.
FAULT_FILTERS = {
    "blur": "gblur=sigma=6",
    "cover": "drawbox=x=0:y=0:w=iw*0.9:h=ih*0.9:color=0x1a1816@1:t=fill",
    "cast": "lutrgb=g=val*0.45",
    "noise": "noise=alls=60:allf=t:all_seed=11",
    "turn": "crop=iw*0.5:ih*0.5:iw*0.5:ih*0.5,scale=iw*2:ih*2,hflip",
}


class TransformError(ValueError):
    pass


@dataclass(frozen=True)
class ClipInfo:
    width: int
    height: int
    fps: Fraction  # average frame rate
    duration: float


def probe(path: Path) -> ClipInfo:
    """Size, average frame rate and duration of a clip's first video stream (ffprobe)."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,avg_frame_rate,r_frame_rate:format=duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise TransformError(f"ffprobe {path}: {out.stderr.strip()}")
    data = json.loads(out.stdout)
    if not data.get("streams"):
        raise TransformError(f"{path}: no video stream")
    s = data["streams"][0]
    rate = s.get("avg_frame_rate") or "0/0"
    if rate in ("0/0", "0"):
        rate = s.get("r_frame_rate") or "25/1"
    fps = Fraction(rate).limit_denominator(100000)
    return ClipInfo(int(s["width"]), int(s["height"]), fps, float(data["format"]["duration"]))


def sha256_file(path: Path, _cache: dict[tuple[str, float, int], str] = {}) -> str:  # noqa: B006
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime, st.st_size)
    if key not in _cache:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _cache[key] = h.hexdigest()
    return _cache[key]


# -- specs -------------------------------------------------------------------------


def normalize(spec: Any) -> Any:
    """The canonical form of a spec (checks it): a name, or {name: params}."""
    if spec is None:
        return "forward"
    if isinstance(spec, str):
        if spec in ("forward", "reverse", "mirror"):
            return spec
        if spec == "pingpong":
            return {"pingpong": {"repeats": 1}}
        raise TransformError(f"unknown transform {spec!r}; one of {', '.join(PRIMITIVES)}")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise TransformError(f"a transform is a name or a one-key mapping, not {spec!r}")
    name, params = next(iter(spec.items()))
    if name == "concat":
        if not isinstance(params, list) or not params:
            raise TransformError("concat takes a non-empty list of transforms")
        return {"concat": [normalize(p) for p in params]}
    if name == "stack":
        params = dict(params or {})
        size, parts = params.pop("size", None), params.pop("parts", None)
        if params:
            raise TransformError(f"stack: unknown key(s) {sorted(params)}")
        if not isinstance(parts, list) or not parts:
            raise TransformError("stack.parts is a non-empty list of transforms")
        return {
            "stack": {"size": _size(size, "stack.size"), "parts": [normalize(p) for p in parts]}
        }
    params = dict(params or {})

    def num(key: str, default: float | None = None, *, positive: bool = True) -> float:
        value = params.pop(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TransformError(f"{name}.{key} must be a number, not {value!r}")
        if value < 0 or (positive and value == 0):
            raise TransformError(f"{name}.{key} must be {'> 0' if positive else '>= 0'}")
        return float(value)

    if name == "pingpong":
        out: dict[str, Any] = {"repeats": int(num("repeats", 1))}
    elif name in ("freeze", "black"):
        out = {"at": num("at", positive=False), "duration": num("duration")}
    elif name == "slow":
        out = {"factor": num("factor")}
    elif name == "fault":
        kind = params.pop("kind", None)
        if kind not in FAULT_FILTERS:
            raise TransformError(f"fault.kind must be one of {', '.join(FAULT_FILTERS)}")
        out = {"kind": kind, "at": num("at", positive=False), "duration": num("duration")}
    elif name == "night":
        out = {"level": num("level", 0.35), "noise": num("noise", 10, positive=False)}
        if out["level"] > 1:
            raise TransformError("night.level must be at most 1")
        if "glare" in params:  # only when given: the key of the older specs stays the same
            out["glare"] = num("glare")
            if not 0 < out["glare"] < 255:
                raise TransformError("night.glare must be a luma level between 0 and 255")
    elif name == "inset":
        out = {
            "scale": num("scale"),
            "canvas": _size(params.pop("canvas", None), "inset.canvas"),
            "x": num("x", 0.0, positive=False),
            "y": num("y", 0.0, positive=False),
        }
        if out["scale"] > 1 or out["x"] > 1 or out["y"] > 1:
            raise TransformError("inset.scale, x and y must be at most 1")
    elif name == "paste":
        rect = params.pop("rect", None)
        if (
            not isinstance(rect, list)
            or len(rect) != 4
            or not all(isinstance(v, int | float) and 0 <= v <= 1 for v in rect)
        ):
            raise TransformError("paste.rect is [x, y, w, h], each 0..1")
        angle = params.pop("angle", 0)
        if not isinstance(angle, int | float) or isinstance(angle, bool):
            raise TransformError("paste.angle must be a number")
        base = normalize(params.pop("base", "forward"))
        out = {
            "base": base,
            "from": num("from", positive=False), "rect": [float(v) for v in rect],
            "angle": float(angle), "scale": num("scale", 1.0), "at": num("at", positive=False),
            "duration": num("duration"), "x": num("x", positive=False),
            "y": num("y", positive=False),
        }  # fmt: skip
    elif name in ("forward", "reverse", "mirror"):
        out = {}
    else:
        raise TransformError(f"unknown transform {name!r}; one of {', '.join(PRIMITIVES)}")
    if params:
        raise TransformError(f"{name}: unknown key(s) {sorted(params)}")
    return {name: out} if out else name


def _size(value: Any, what: str) -> list[int]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 16 for v in value)
        or any(v % 2 for v in value)
    ):
        raise TransformError(f"{what} is [width, height]: even integers >= 16")
    return [int(value[0]), int(value[1])]


def describe(spec: Any) -> str:
    spec = normalize(spec)
    if isinstance(spec, str):
        return spec
    name, p = next(iter(spec.items()))
    if name == "concat":
        return " + ".join(describe(s) for s in p)
    if name == "pingpong":
        return f"pingpong x{p['repeats']}"
    if name in ("freeze", "black"):
        return f"{name} {p['duration']:g} s at {p['at']:g} s"
    if name == "night":
        glare = f", lights above {p['glare']:g} kept" if "glare" in p else ""
        return f"night x{p['level']:g} luma, noise {p['noise']:g}{glare}"
    if name == "fault":
        return f"{p['kind']} {p['duration']:g} s at {p['at']:g} s"
    if name == "inset":
        w, h = p["canvas"]
        return f"inset x{p['scale']:g} in {w}x{h}"
    if name == "stack":
        w, h = p["size"]
        return f"stack {w}x{h} of ({', '.join(describe(s) for s in p['parts'])})"
    if name == "paste":
        return f"paste a {p['angle']:g}° patch {p['duration']:g} s at {p['at']:g} s"
    return f"slow x{p['factor']:g}"


def cache_key(source_sha: str, spec: Any) -> str:
    blob = json.dumps(
        {"source": source_sha, "spec": normalize(spec), "encoding": ENCODING_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


# -- filter graph ------------------------------------------------------------------


class _Graph:
    """Builds one filter_complex: every leaf takes its own copy of the source ([0:v])."""

    def __init__(self, info: ClipInfo) -> None:
        self.info = info
        self.lines: list[str] = []
        self.copies = 0
        self.n = 0

    def label(self, prefix: str = "v") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def source(self) -> str:
        self.copies += 1
        return f"src{self.copies}"

    def norm(self) -> str:
        return "setpts=PTS-STARTPTS,format=yuv420p,setsar=1"

    def concat(self, parts: list[str]) -> str:
        if len(parts) == 1:
            return parts[0]
        out = self.label()
        ins = "".join(f"[{p}]" for p in parts)
        self.lines.append(f"{ins}concat=n={len(parts)}:v=1:a=0[{out}]")
        return out

    def chain(self, filters: str) -> str:
        """One chain on the source: ``filters`` (may be empty), then the normalisation."""
        out = self.label()
        head = f"{filters}," if filters else ""
        self.lines.append(f"[{self.source()}]{head}{self.norm()}[{out}]")
        return out

    def build(self, spec: Any) -> str:
        spec = normalize(spec)
        fps = self.info.fps
        if spec == "forward":
            return self.chain("")
        if spec == "reverse":
            return self.chain("reverse")
        if spec == "mirror":
            return self.chain("hflip")
        name, p = next(iter(spec.items()))
        if name == "concat":
            return self.concat([self.build(s) for s in p])
        if name == "inset":
            w, h = p["canvas"]
            k = p["scale"]
            return self.chain(
                f"scale=trunc(iw*{k!r}/2)*2:trunc(ih*{k!r}/2)*2:flags=area,"
                f"pad={w}:{h}:x=(ow-iw)*{p['x']!r}:y=(oh-ih)*{p['y']!r}:color=0x6e6e6e"
            )
        if name == "stack":
            w, h = p["size"]
            parts = []
            for part in p["parts"]:
                label = self.label()
                self.lines.append(f"[{self.build(part)}]scale={w}:-2,setsar=1[{label}]")
                parts.append(label)
            out = self.label()
            stacked = (
                "".join(f"[{x}]" for x in parts) + f"vstack=inputs={len(parts)}"
                if len(parts) > 1
                else f"[{parts[0]}]null"
            )
            self.lines.append(
                f"{stacked},crop=w={w}:h='min(ih,{h})':x=0:y=0,"
                f"pad={w}:{h}:x=0:y=(oh-ih)/2:color=0x6e6e6e[{out}]"
            )
            return out
        if name == "paste":
            return self._paste(p)
        if name == "pingpong":
            return self.concat(
                [self.build(s) for _ in range(p["repeats"]) for s in ("forward", "reverse")]
            )
        if name == "slow":
            return self.chain(f"setpts={p['factor']!r}*(PTS-STARTPTS),fps={fps}")
        if name == "night":
            # glare: what is brighter than that level (headlights, lamps, lit signs, white
            # paint in their beams) keeps its brightness while the rest goes dark.
            y = (
                f"y='if(gt(val\\,{p['glare']!r})\\,val\\,val*{p['level']!r})'"
                if "glare" in p
                else f"y=val*{p['level']!r}"
            )
            return self.chain(
                f"lutyuv={y},hue=s=0.25,noise=alls={int(p['noise'])}:allf=t:all_seed=7"
            )
        at, duration = p["at"], p["duration"]
        if name == "fault":
            # The segment [at, at + duration] filtered, in place (the clip keeps its length).
            end = at + duration
            if end > self.info.duration:
                raise TransformError(
                    f"fault ends at {end:g} s, past the clip's end ({self.info.duration:.1f} s)"
                )
            parts = []
            if at > 0:
                parts.append(self.label())
                self.lines.append(f"[{self.source()}]trim=end={at!r},{self.norm()}[{parts[-1]}]")
            parts.append(self.label())
            self.lines.append(
                f"[{self.source()}]trim=start={at!r}:end={end!r},{self.norm()},"
                f"{FAULT_FILTERS[p['kind']]},format=yuv420p[{parts[-1]}]"
            )
            if end < self.info.duration - 0.1:
                parts.append(self.label())
                self.lines.append(f"[{self.source()}]trim=start={end!r},{self.norm()}[{parts[-1]}]")
            return self.concat(parts)
        if at > self.info.duration:
            raise TransformError(
                f"{name}.at {at:g} s is past the clip's end ({self.info.duration:.1f} s)"
            )
        frames = max(1, round(duration * fps))
        head = self.label()
        self.lines.append(f"[{self.source()}]trim=end={at!r},{self.norm()}[{head}]")
        middle = self.label()
        if name == "freeze":
            # The first frame at or after `at`, repeated `frames` times.
            self.lines.append(
                f"[{self.source()}]trim=start={at!r},{self.norm()},trim=end_frame=1,"
                f"loop=loop={frames - 1}:size=1:start=0,setpts=N/({fps}*TB)[{middle}]"
            )
        else:  # black
            w, h = self.info.width, self.info.height
            self.lines.append(
                f"color=c=black:s={w}x{h}:r={fps}:d={float(frames / fps)!r},{self.norm()}[{middle}]"
            )
        tail = self.label()
        self.lines.append(f"[{self.source()}]trim=start={at!r},{self.norm()}[{tail}]")
        parts = [head, middle, tail] if at > 0 else [middle, tail]
        return self.concat(parts)

    def _paste(self, p: dict[str, Any]) -> str:
        fps = self.info.fps
        x, y, w, h = p["rect"]
        iw, ih = self.info.width, self.info.height
        a = f"{p['angle']!r}*PI/180"
        patch = self.label()
        self.lines.append(
            f"[{self.source()}]trim=start={p['from']!r},{self.norm()},trim=end_frame=1,"
            f"crop={int(w * iw)}:{int(h * ih)}:{int(x * iw)}:{int(y * ih)},"
            f"scale=trunc(iw*{p['scale']!r}/2)*2:trunc(ih*{p['scale']!r}/2)*2,format=rgba,"
            f"rotate={a}:ow=rotw({a}):oh=roth({a}):c=none,"
            f"loop=loop=-1:size=1:start=0,setpts=N/({fps}*TB)[{patch}]"
        )
        main = self.build(p["base"])
        out = self.label()
        end = p["at"] + p["duration"]
        self.lines.append(
            f"[{main}][{patch}]overlay=x={int(p['x'] * iw)}:y={int(p['y'] * ih)}:"
            f"enable='between(t,{p['at']!r},{end!r})':shortest=1,format=yuv420p[{out}]"
        )
        return out

    def script(self, spec: Any) -> str:
        out = self.build(spec)
        fps = self.info.fps
        split = (
            f"[0:v]split={self.copies}" + "".join(f"[src{i + 1}]" for i in range(self.copies))
            if self.copies > 1
            else "[0:v]null[src1]"
        )
        # Re-time every frame to a constant rate from 0 (concat/loop leave odd timestamps).
        final = f"[{out}]setpts=N/({fps.numerator}/{fps.denominator}*TB),format=yuv420p[out]"
        return ";\n".join([split, *self.lines, final])


def is_identity(spec: Any) -> bool:
    return normalize(spec) == "forward"


def build(source: Path, spec: Any, cache_dir: Path) -> Path:
    """The transformed clip (built once; cached by source SHA-256 and spec)."""
    if is_identity(spec):
        return source
    info = probe(source)
    key = cache_key(sha256_file(source), spec)
    out = cache_dir / f"{key}.mp4"
    if out.is_file() and out.stat().st_size > 0:
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    graph = _Graph(info).script(spec)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=".mp4", dir=cache_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    fps = info.fps
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-i",
        str(source),
        "-filter_complex",
        graph,
        "-map",
        "[out]",
        "-r",
        f"{fps.numerator}/{fps.denominator}",
        *ENCODE_ARGS,
        str(tmp),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    # A source with undecodable packets (street_parked_cars.mp4's truncated tail) makes
    # ffmpeg complain but still write what it could decode: accept a non-empty output.
    if proc.returncode != 0 or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        raise TransformError(
            f"ffmpeg failed building {describe(spec)} of {source.name}: "
            f"{proc.stderr.strip()[-800:]}"
        )
    tmp.chmod(0o644)
    tmp.replace(out)
    (cache_dir / f"{key}.json").write_text(
        json.dumps(
            {
                "source": str(source),
                "source_sha256": sha256_file(source),
                "spec": normalize(spec),
                "encoding": ENCODING_VERSION,
                "ffmpeg": cmd[:-1] + ["OUT"],
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return out
