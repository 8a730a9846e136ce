"""Draw a scenario's zones, lines and directions on frames of its (transformed) clip.

    .venv/bin/python -m eval.preview SCENARIO [--at 0 3 7] [--out /tmp/preview] [--step 1]

Writes one PNG per requested time (seconds of the transformed clip) — or a contact sheet
every ``--step`` seconds when ``--sheet`` is given — with each zone outlined and named, each
line_crossing line with its A and B sides, and each wrong_way rule's expected direction as an
arrow from its zone's centre. Use it to place geometry and to check expectations by eye.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from eval import transforms
from eval.run import CACHE_DIR, load_scenarios, resolve_clip

COLOURS = [
    (255, 60, 60),
    (60, 200, 255),
    (255, 200, 0),
    (120, 255, 120),
    (255, 120, 255),
    (255, 140, 0),
    (0, 255, 200),
    (200, 200, 255),
]


def frame_at(clip: Path, t: float, out: Path) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-ss",
            f"{t:.3f}",
            "-i",
            str(clip),
            "-frames:v",
            "1",
            str(out),
        ],
        check=True,
    )


def _px(points: list[list[float]], w: int, h: int) -> list[tuple[float, float]]:
    if all(x <= 1.0 and y <= 1.0 for x, y in points):
        return [(x * w, y * h) for x, y in points]
    return [(float(x), float(y)) for x, y in points]


def annotate(img: Image.Image, scenario: dict, label: str) -> Image.Image:
    img = img.convert("RGB")
    w, h = img.size
    d = ImageDraw.Draw(img)
    zones = {z["name"]: z for z in scenario.get("zones") or []}
    for i, (name, z) in enumerate(zones.items()):
        pts = _px(z["points"], w, h)
        c = COLOURS[i % len(COLOURS)]
        d.polygon(pts, outline=c, width=2)
        d.text((pts[0][0] + 3, pts[0][1] + 3), name, fill=c)
    for j, r in enumerate(scenario.get("rules") or []):
        c = COLOURS[(j + 3) % len(COLOURS)]
        if r.get("type") == "line_crossing":
            (x1, y1), (x2, y2) = _px(r["line"], w, h)
            d.line([(x1, y1), (x2, y2)], fill=c, width=3)
            # Side A is on the left walking from the first point to the second (y down).
            dx, dy = x2 - x1, y2 - y1
            n = max((dx * dx + dy * dy) ** 0.5, 1.0)
            nx, ny = dy / n, -dx / n  # left normal in image coordinates
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
            d.text((mx + 14 * nx, my + 14 * ny), "A", fill=c)
            d.text((mx - 14 * nx, my - 14 * ny), "B", fill=c)
            d.text((x1 + 3, y1 + 3), f"{r['name']} ({r.get('direction', 'both')})", fill=c)
        elif r.get("type") == "wrong_way" and r.get("zone") in zones:
            pts = _px(zones[r["zone"]]["points"], w, h)
            cx = sum(p[0] for p in pts) / len(pts)
            cy = sum(p[1] for p in pts) / len(pts)
            dx, dy = r["direction"]
            n = max((dx * dx + dy * dy) ** 0.5, 1e-9)
            ex, ey = cx + 60 * dx / n, cy + 60 * dy / n
            d.line([(cx, cy), (ex, ey)], fill=c, width=3)
            d.ellipse([ex - 5, ey - 5, ex + 5, ey + 5], fill=c)
            d.text((cx + 4, cy + 4), f"{r['name']}: expected travel", fill=c)
    d.rectangle([0, 0, 8 * len(label) + 8, 14], fill=(0, 0, 0))
    d.text((4, 2), label, fill=(255, 255, 255))
    return img


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.preview", description=__doc__.split("\n")[0])
    p.add_argument("scenario")
    p.add_argument("--scenarios", default=None, help="scenario file (default eval/scenarios.yaml)")
    p.add_argument("--at", type=float, nargs="*", default=[0.0])
    p.add_argument("--sheet", action="store_true", help="a contact sheet every --step seconds")
    p.add_argument("--step", type=float, default=1.0)
    p.add_argument("--out", default="/tmp/eval-preview")
    args = p.parse_args(argv)
    suite = load_scenarios(Path(args.scenarios) if args.scenarios else None)
    matches = [s for s in suite["scenarios"] if s["name"] == args.scenario]
    if not matches:
        print(f"no scenario {args.scenario!r}", file=sys.stderr)
        return 2
    sc = matches[0]
    clip = transforms.build(resolve_clip(sc["clip"]), sc.get("transform"), CACHE_DIR)
    duration = transforms.probe(clip).duration
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    times = args.at
    if args.sheet:
        n = int(duration // args.step) + 1
        times = [round(i * args.step, 3) for i in range(n)]
    images = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in times:
            raw = Path(tmp) / f"{t:.3f}.png"
            frame_at(clip, t, raw)
            images.append(annotate(Image.open(raw), sc, f"{sc['name']} t={t:g}s"))
    if args.sheet:
        cols = 3
        w, h = images[0].size
        scale = 0.5 if w <= 800 else 0.25
        tw, th = int(w * scale), int(h * scale)
        rows = (len(images) + cols - 1) // cols
        sheet = Image.new("RGB", (cols * tw, rows * th))
        for i, im in enumerate(images):
            sheet.paste(im.resize((tw, th)), ((i % cols) * tw, (i // cols) * th))
        path = out_dir / f"{sc['name']}_sheet.png"
        sheet.save(path)
        print(path)
    else:
        for t, im in zip(times, images, strict=True):
            path = out_dir / f"{sc['name']}_{t:g}.png"
            im.save(path)
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
