"""CLI: cameras import / list, and probe against the real ONVIF camera."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import IPYCAM_PASSWORD, IPYCAM_USER
from tests.peers.procs import IpyCamProcess

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shaobing.cli", *args], capture_output=True, text=True,
        check=False, cwd=ROOT, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_import_and_list(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    cams = tmp_path / "cams.csv"
    cams.write_text(
        "id,name,url,username,password,county,township,programme\n"
        "v-01,村口,rtsp://10.2.0.1/ch1,admin,Import-pw-1,示例县,城关镇,village\n"
        "v-02,桥头,rtsp://10.2.0.2/ch1,,,示例县,城关镇,village\n",
        encoding="utf-8",
    )
    proc = cli("cameras", "import", str(cams), "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "imported 2 camera(s)" in proc.stdout
    listing = cli("cameras", "list", "--config", str(config))
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].startswith("v-01\t村口\tvillage\t示例县/城关镇\trtsp://10.2.0.1/ch1")
    assert len(lines) == 2 and "Import-pw-1" not in listing.stdout


def test_bad_import_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    cams = tmp_path / "cams.csv"
    cams.write_text("id,url\nok-1,rtsp://h/x\nbad 2,rtsp://h/y\n", encoding="utf-8")
    proc = cli("cameras", "import", str(cams), "--config", str(config))
    assert proc.returncode == 2
    assert "row 3 (id=bad 2): id:" in proc.stderr
    assert cli("cameras", "list", "--config", str(config)).stdout == ""


def probe(camera: IpyCamProcess, password: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "cameras", "probe", "--host", "127.0.0.1", "--port", str(camera.onvif_port),
        "--user", IPYCAM_USER, "--password-env", "CAM_PW", env={"CAM_PW": password},
    )  # fmt: skip


def test_probe_onvif_camera(ipycam_camera: IpyCamProcess) -> None:
    proc = probe(ipycam_camera, IPYCAM_PASSWORD)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["main_uri"] == ipycam_camera.main_url
    assert result["sub_uri"] == ipycam_camera.sub_url
    assert len(result["profiles"]) >= 2
    assert IPYCAM_PASSWORD not in proc.stdout + proc.stderr
    wrong = probe(ipycam_camera, "wrong-pw-1")
    assert wrong.returncode == 1 and "127.0.0.1" in wrong.stderr
    assert "wrong-pw-1" not in wrong.stderr
