"""Case export: a signed zip of real evidence (a remuxed clip, JPEG snapshots) through
the API, verified by ``shaobing evidence verify``; one changed byte is named."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from accounts.service import create_user, list_audit
from alerts.clips import write_clip
from alerts.domain.model import Alert, EvidenceRef
from alerts.evidence import encode_jpeg, write_evidence
from alerts.export import MANIFEST, SIGNATURE, verify_export
from api.app import create_app
from core.area import Area
from ingest.ring import PacketRing
from shaobing.bootstrap import Hub
from shaobing.cli import main
from shaobing.config import parse_config
from tests.factories import make_alert, store
from tests.integration.test_clips import fill_ring, stream_time

PASSWORD = "export-pass-0123"
SECRET = "hub-link-secret-0123456789"
AREA = {"county": "示例县", "township": "城关镇"}


def config(tmp: Path, models_dir: Path) -> dict[str, Any]:
    return {"data_dir": str(tmp / "data"), "api": {"link_secret": SECRET},
            "detector": {"model": str(models_dir / "yolox_nano.onnx")}}  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path, models_dir: Path, videos_dir: Path) -> Iterator[dict[str, Any]]:
    """A hub (no camera), an investigator and two alerts with a real clip and snapshot."""
    cfg_path = tmp_path / "hub.yaml"
    cfg_path.write_text(json.dumps(config(tmp_path, models_dir)))  # JSON is YAML
    hub = Hub(parse_config(config(tmp_path, models_dir), str(cfg_path), tmp_path))
    ring = PacketRing(30, 16 << 20, clock=stream_time)
    fill_ring(videos_dir / "crosswalk_people.mp4", ring)
    alerts: list[Alert] = []
    for i, (start, end) in enumerate(((0.0, 5.0), (11.0, 14.0)), 1):
        clip = ring.cut(start, end)
        assert clip is not None
        clip_path = hub.snapshot_dir / f"clip-{i}.mp4"
        sha = write_clip(clip, clip_path)
        image = np.full((36, 64, 3), 40 * i, np.uint8)
        snap = write_evidence(hub.snapshot_dir, f"snap-{i}.jpg", encode_jpeg(image))
        alert = make_alert(i, area=Area(**AREA), camera_id="cg-0001")
        clip_ref = EvidenceRef(str(clip_path), sha, clip.start, clip.end)
        alert.evidence = {"snapshot": EvidenceRef(str(snap.path), snap.sha256), "clip": clip_ref}
        store(hub.sessions, alert)
        alerts.append(alert)
    with hub.sessions.begin() as session:
        create_user(session, "li", "investigator", password=PASSWORD, area=Area(county="示例县"))
        create_user(session, "wang", "operator", password=PASSWORD, area=Area(county="示例县"))
    client = TestClient(create_app(hub.services, hub.sessions, allowed_hosts=["testserver"]))
    yield {"hub": hub, "client": client, "alerts": alerts, "config": cfg_path}
    hub.engine.dispose()


def login(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def export(setup: dict[str, Any], target: Path, username: str = "li") -> Any:
    client: TestClient = setup["client"]
    body = {"alert_ids": [a.id for a in setup["alerts"]], "case_number": "城公刑案-2026-0042",
            "reason": "盗窃案件调查取证"}  # fmt: skip
    r = client.post("/api/exports", json=body, headers=login(client, username))
    if r.status_code == 200:
        target.write_bytes(r.content)
    return r


def rewrite(src: Path, dst: Path, change: Any) -> None:
    """Copy a zip, passing each member's bytes through ``change(name, data)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = change(name, zin.read(name))
            if data is not None:
                zout.writestr(name, data)


def test_export_is_signed_complete_and_verifies(setup: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "case.zip"
    r = export(setup, target)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(target) as zf:
        manifest = json.loads(zf.read(MANIFEST))
        names = set(zf.namelist())
    a1, a2 = setup["alerts"]
    assert names == {MANIFEST, SIGNATURE, f"{a1.id}/snapshot.jpg", f"{a1.id}/clip.mp4",
                     f"{a2.id}/snapshot.jpg", f"{a2.id}/clip.mp4"}  # fmt: skip
    assert manifest["case_number"] == "城公刑案-2026-0042"
    assert manifest["reason"] == "盗窃案件调查取证" and manifest["exported_by"] == "li"
    assert [a["camera"]["id"] for a in manifest["alerts"]] == ["cg-0001", "cg-0001"]
    assert manifest["alerts"][1]["clip"]["start"] == pytest.approx(10.43, abs=0.01)
    assert manifest["missing_on_disk"] == []
    by_name = {f["name"]: f for f in manifest["files"]}
    assert by_name[f"{a1.id}/clip.mp4"]["sha256"] == a1.evidence["clip"].sha256
    result = verify_export(target, SECRET.encode())
    assert result.ok and result.files == 4, result.problems
    assert verify_export(target, b"another hub's key").problems[0].startswith(MANIFEST)
    # Audited: who exported what, for which case.
    with setup["hub"].sessions() as session:
        entries, _ = list_audit(session, action="evidence_export")
    assert entries[0].actor == "li" and entries[0].target == "case:城公刑案-2026-0042"
    assert a1.id in (entries[0].detail or "")
    # The command line says the same: exit 0.
    assert main(["evidence", "verify", str(target), "--config", str(setup["config"])]) == 0


def test_one_changed_byte_of_a_clip_is_named(
    setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "case.zip"
    assert export(setup, target).status_code == 200
    clip_name = f"{setup['alerts'][1].id}/clip.mp4"

    def flip(name: str, data: bytes) -> bytes:
        if name != clip_name:
            return data
        changed = bytearray(data)
        changed[len(data) // 2] ^= 0x01
        return bytes(changed)

    altered = tmp_path / "altered.zip"
    rewrite(target, altered, flip)
    result = verify_export(altered, SECRET.encode())
    assert not result.ok and result.signature_ok
    assert result.problems == [f"{clip_name}: altered (SHA-256 differs)"]
    capsys.readouterr()
    assert main(["evidence", "verify", str(altered), "--config", str(setup["config"])]) == 1
    assert clip_name in capsys.readouterr().out

    missing = tmp_path / "missing.zip"
    rewrite(target, missing, lambda name, data: None if name == clip_name else data)
    assert verify_export(missing, SECRET.encode()).problems == [f"{clip_name}: missing"]

    def forge(name: str, data: bytes) -> bytes:  # the manifest edited, the signature kept
        return data.replace("盗窃".encode(), "误报".encode()) if name == MANIFEST else data

    forged = tmp_path / "forged.zip"
    rewrite(target, forged, forge)
    assert not verify_export(forged, SECRET.encode()).signature_ok


def test_export_needs_the_permission_lists_missing_and_refuses_altered_evidence(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    assert export(setup, tmp_path / "x.zip", username="wang").status_code == 403
    # A file retention deleted is listed as missing; the rest is exported.
    gone = setup["alerts"][1]
    Path(gone.evidence["snapshot"].path).unlink()
    assert export(setup, tmp_path / "w.zip").status_code == 200
    with zipfile.ZipFile(tmp_path / "w.zip") as zf:
        manifest = json.loads(zf.read(MANIFEST))
    assert [m["name"] for m in manifest["missing_on_disk"]] == [f"{gone.id}/snapshot.jpg"]
    assert verify_export(tmp_path / "w.zip", SECRET.encode()).ok
    clip = Path(setup["alerts"][0].evidence["clip"].path)
    data = bytearray(clip.read_bytes())
    data[100] ^= 0xFF
    clip.write_bytes(bytes(data))
    r = export(setup, tmp_path / "y.zip")
    assert r.status_code == 409 and "clip.mp4" in r.json()["detail"]
