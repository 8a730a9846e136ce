"""Check an offline bundle's wheelhouse for one target: every wheel installs on CPython
3.11 of that architecture with glibc >= 2.28, by its tags and by what it holds.

    python scripts/check_wheels.py WHEELHOUSE x86_64|aarch64 [--glibc 2.28] [--python 3.11]
                                   [--known deploy/offline/wheel-gaps.txt]

Per wheel: the tags (``py3-none-any``, ``cp311``/``abi3``, ``manylinux_X_Y_<arch>`` with
X.Y <= the glibc floor, or the legacy ``manylinux2014``/``2010``/``1`` names); every ELF
file inside is for the architecture (``e_machine``), a "pure" wheel holds none, and no
shared object asks for a glibc symbol version above the floor (``GLIBC_2.NN``).
Prints one line per problem and a summary; exits 1 if there is any, except the known
gaps listed in ``--known`` (``<project> <arch> <why>`` a line: printed, documented in
docs/install-offline.md, not failing). scripts/bundle.sh runs it on every bundle.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

E_MACHINE = {"x86_64": 0x3E, "aarch64": 0xB7}
LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
GLIBC_REF = re.compile(rb"GLIBC_2\.(\d+)")
PLATFORM = re.compile(r"^(manylinux1|manylinux2010|manylinux2014|manylinux_(\d+)_(\d+))_(\w+)$")


def platform_ok(tag: str, arch: str, glibc: tuple[int, int]) -> bool:
    if tag == "any":
        return True
    m = PLATFORM.match(tag)
    if m is None or m.group(4) != arch:
        return False
    needs = LEGACY[m.group(1)] if m.group(2) is None else (int(m.group(2)), int(m.group(3)))
    return needs <= glibc


def check_wheel(path: Path, arch: str, glibc: tuple[int, int], python: str) -> list[str]:
    problems: list[str] = []
    parts = path.name[: -len(".whl")].split("-")
    pys, abis, plats = (p.split(".") for p in parts[-3:])
    nodot = python.replace(".", "")
    cp = f"cp{nodot}"
    abi3 = "abi3" in abis and any(p.startswith("cp3") for p in pys)
    if not (any(p in (cp, "py3", f"py{nodot}") for p in pys) or abi3):
        problems.append(f"python tag {'.'.join(pys)} is not for CPython {python}")
    if not any(a in ("none", "abi3", cp) for a in abis):
        problems.append(f"ABI {'.'.join(abis)} is not {cp}/abi3/none")
    if not any(platform_ok(p, arch, glibc) for p in plats):
        problems.append(f"platform {'.'.join(plats)} is not manylinux <= "
                        f"{glibc[0]}.{glibc[1]} {arch}")  # fmt: skip
    pure = plats == ["any"]
    with zipfile.ZipFile(path) as whl:
        for info in whl.infolist():
            if info.is_dir() or info.file_size < 20:
                continue
            with whl.open(info) as fh:
                head = fh.read(20)
            if head[:4] != b"\x7fELF":
                continue
            if pure:
                problems.append(f"{info.filename}: a native file in a pure (any) wheel")
            little = head[5] == 1
            machine = int.from_bytes(head[18:20], "little" if little else "big")
            if machine != E_MACHINE[arch]:
                problems.append(f"{info.filename}: ELF for machine {machine:#x}, not {arch}")
                continue
            data = whl.read(info)
            newest = max((int(n) for n in GLIBC_REF.findall(data)), default=0)
            if newest > glibc[1] and glibc[0] == 2:
                problems.append(f"{info.filename}: needs GLIBC_2.{newest} > {glibc[0]}.{glibc[1]}")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("wheelhouse", type=Path)
    p.add_argument("arch", choices=sorted(E_MACHINE))
    p.add_argument("--glibc", default="2.28")
    p.add_argument("--python", default="3.11")
    p.add_argument("--known", type=Path, help="known gaps: '<project> <arch> <why>' a line")
    args = p.parse_args()
    known: dict[str, str] = {}
    if args.known is not None:
        for line in args.known.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                project, arch, why = line.split(maxsplit=2)
                if arch == args.arch:
                    known[project.lower().replace("-", "_")] = why
    glibc = tuple(int(x) for x in args.glibc.split("."))
    assert len(glibc) == 2
    wheels = sorted(args.wheelhouse.glob("*.whl"))
    if not wheels:
        print(f"check_wheels: no wheel in {args.wheelhouse}", file=sys.stderr)
        return 1
    bad = 0
    native = 0
    for whl in wheels:
        problems = check_wheel(whl, args.arch, glibc, args.python)  # type: ignore[arg-type]
        native += not whl.name.endswith("-any.whl")
        project = whl.name.split("-")[0].lower()
        if problems and project in known:
            print(f"{whl.name}: known gap ({known[project]}): {'; '.join(problems)}")
            continue
        for problem in problems:
            print(f"{whl.name}: {problem}")
        bad += bool(problems)
    print(f"check_wheels: {len(wheels)} wheels ({native} native) for {args.arch}, CPython "
          f"{args.python}, glibc >= {args.glibc}: {bad} with problems")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
