"""The offline bundle's pieces that need no registry: the installer's refusals, the
single-host config it writes, the pins covering every runtime dependency. (The whole
bundle is proven by scripts/offline_smoke.sh and scripts/arm64_smoke.sh: they need the
registries to build it and minutes to install it; docs/install-offline.md.)"""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from shaobing.config import load_config

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = ROOT / "deploy" / "offline"


def fake_bundle(tmp_path: Path, arch: str) -> Path:
    """A bundle folder with the installer, BUILD-INFO and SHA256SUMS (no wheels)."""
    bundle = tmp_path / f"shaobing-0.0.1-{arch}"
    (bundle / "wheelhouse").mkdir(parents=True)
    shutil.copy(OFFLINE / "install.sh", bundle / "install.sh")
    (bundle / "BUILD-INFO").write_text(f"name=shaobing\nversion=0.0.1\narch={arch}\n")
    (bundle / "requirements.txt").write_text("")
    lines = []
    for f in sorted(p for p in bundle.rglob("*") if p.is_file()):
        lines.append(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  ./{f.relative_to(bundle)}")
    (bundle / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return bundle


def install(bundle: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(bundle / "install.sh"), "--prefix", str(tmp_path / "opt"),
         "--config-dir", str(tmp_path / "etc"), "--data-dir", str(tmp_path / "data"),
         "--no-systemd", "--no-user", *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_installer_refuses_another_architecture(tmp_path: Path) -> None:
    other = "aarch64" if platform.machine() == "x86_64" else "x86_64"
    done = install(fake_bundle(tmp_path, other), tmp_path)
    assert done.returncode == 1 and f"this bundle is for {other}" in done.stderr
    assert not (tmp_path / "opt").exists()


def test_installer_refuses_a_damaged_copy(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path, platform.machine())
    (bundle / "requirements.txt").write_text("tampered==1\n")
    done = install(bundle, tmp_path)
    assert done.returncode == 1 and "do not match SHA256SUMS" in done.stderr
    assert not (tmp_path / "opt").exists()


def test_installer_refuses_a_python_it_has_no_wheels_for(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path, platform.machine())
    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\nexec python3 -c 'import sys; sys.exit(1)'\n")  # "too old"
    fake.chmod(0o755)
    done = install(bundle, tmp_path, "--python", str(fake))
    assert done.returncode == 1 and "older than 3.11" in done.stderr


def test_single_host_config_template_is_valid(tmp_path: Path) -> None:
    text = (OFFLINE / "shaobing.yaml").read_text(encoding="utf-8")
    assert {"@DATA_DIR@", "@PREFIX@", "@LOG_DIR@"} <= set(re.findall(r"@[A-Z_]+@", text))
    path = tmp_path / "shaobing.yaml"
    path.write_text(text.replace("@DATA_DIR@", str(tmp_path / "data"))
                    .replace("@LOG_DIR@", str(tmp_path / "log"))
                    .replace("@PREFIX@", str(tmp_path / "opt")), encoding="utf-8")  # fmt: skip
    loaded = load_config(str(path))
    assert loaded.log_file() == tmp_path / "log" / "shaobing.log"  # rotated: logging.max_mb
    assert loaded.mirror_dir == tmp_path / "opt" / "current" / "models"
    assert loaded.data_dir == tmp_path / "data" and len(loaded.config.cameras) == 1


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_runtime_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (OFFLINE / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line}: not pinned with =="
            pins[_name(name)] = version
    missing = [d for d in project["dependencies"] if _name(d) not in pins]
    assert not missing, f"add to deploy/offline/constraints.txt: {missing}"
    assert "torch" not in pins and "ultralytics" not in pins  # the extra is not bundled
    for line in (OFFLINE / "marker-wheels.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert _name(line) in pins, line


@pytest.mark.parametrize("unit", sorted((ROOT / "deploy").glob("*/*.service")))
def test_units_run_the_installed_command(unit: Path) -> None:
    text = unit.read_text()
    assert "ExecStart=/opt/shaobing/.venv/bin/shaobing " in text
    assert "EnvironmentFile=" in text and "User=shaobing" in text
    # logging.file: the service user may write /var/log/shaobing under ProtectSystem=strict
    assert "LogsDirectory=shaobing" in text and "/var/log/shaobing" in text


# -- scripts/check_wheels.py: what bundle.sh runs on every wheelhouse ------------------


def _elf(machine: int, glibc_minor: int = 17) -> bytes:
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 11 + machine.to_bytes(2, "little")
    return header + b"\x00" * 40 + f"GLIBC_2.{glibc_minor}\x00".encode()


def _wheel(folder: Path, name: str, files: dict[str, bytes]) -> Path:
    import zipfile

    path = folder / name
    with zipfile.ZipFile(path, "w") as whl:
        for member, data in files.items():
            whl.writestr(member, data)
    return path


def _check(folder: Path, arch: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["python3", str(ROOT / "scripts" / "check_wheels.py"), str(folder), arch, *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_check_wheels_finds_what_would_fail_on_the_target(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    _wheel(good, "pure-1.0-py3-none-any.whl", {"pure/__init__.py": b""})
    _wheel(good, "fast-1.0-cp311-cp311-manylinux_2_28_aarch64.whl", {"fast/x.so": _elf(0xB7, 28)})
    _wheel(good, "old-1.0-cp38-abi3-manylinux2014_aarch64.whl", {"old/y.so": _elf(0xB7)})
    done = _check(good, "aarch64")
    assert done.returncode == 0 and "3 wheels (2 native)" in done.stdout, done.stdout

    bad = tmp_path / "bad"
    bad.mkdir()
    _wheel(bad, "a-1.0-cp311-cp311-manylinux_2_31_aarch64.whl", {"a/x.so": _elf(0xB7)})
    _wheel(bad, "b-1.0-cp311-cp311-manylinux_2_28_aarch64.whl", {"b/x.so": _elf(0x3E)})
    _wheel(bad, "c-1.0-py3-none-any.whl", {"c/x.so": _elf(0xB7)})
    _wheel(bad, "d-1.0-cp312-cp312-manylinux_2_28_aarch64.whl", {"d/x.so": _elf(0xB7)})
    _wheel(bad, "e_loader-1.0-py3-none-manylinux_2_28_aarch64.whl", {"e/x.so": _elf(0xB7, 29)})
    done = _check(bad, "aarch64")
    assert done.returncode == 1 and "5 with problems" in done.stdout, done.stdout
    for expected in ("not manylinux <= 2.28 aarch64", "ELF for machine 0x3e", "native file in a "
                     "pure", "not for CPython 3.11", "needs GLIBC_2.29 > 2.28"):  # fmt: skip
        assert expected in done.stdout, expected
    known = tmp_path / "gaps.txt"
    known.write_text("e-loader aarch64 documented\n")
    assert "known gap (documented)" in _check(bad, "aarch64", "--known", str(known)).stdout
