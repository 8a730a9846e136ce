"""Recording playback API on a real hub's database and app (no camera started): segments
recorded from a real clip's packets, listed, summarised per hour with alert marks, played
as one MP4 (ffprobe), exported into a signed case export that verifies; scope,
permissions and audit."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from accounts import passwords
from accounts.service import create_user, list_audit
from alerts.adapters.sql import AlertRecord
from alerts.export import verify_export
from api.app import create_app
from camera_registry.config import RecordConfig
from core.area import Area
from recording.service import RecordingService
from recording.store import RecordingHold, SegmentRecord
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from tests.factories import make_alert, store
from tests.integration.test_recording import ClipFeed, ffprobe
from tests.integration.test_tracks_api import CG, COUNTY, HX, PW, hub_config

ORIGIN = 1_790_000_000.0  # the recording's first frame (epoch seconds)


@dataclass
class World:
    hub: Hub
    client: TestClient
    tokens: dict[str, str]

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def get(self, name: str, url: str, **extra: str) -> Any:
        return self.client.get(url, headers={**self.headers(name), **extra})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, models_dir: Path,
          videos_dir: Path) -> Iterator[World]:  # fmt: skip
    tmp = tmp_path_factory.mktemp("recapi")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8,
                                                       parallelism=1))  # fmt: skip
        hub = Hub(parse_config(hub_config(tmp, models_dir), "rec.yaml", tmp))
        loaded = hub.loaded
        service = RecordingService(loaded.config.recording, loaded.recording_dir,
                                   loaded.data_dir / "recording-spool", hub.sessions)
        feed = ClipFeed(videos_dir / "crosswalk_people.mp4", origin=ORIGIN)
        service.recorder.add_camera("cg-cam", RecordConfig(mode="continuous", segment_s=4),
                                    feed)  # type: ignore[arg-type]  # fmt: skip
        service.start()
        feed.play()
        service.stop()
        store(hub.sessions, make_alert(1, camera_id="cg-cam", created_at=ORIGIN + 5))
        client = TestClient(create_app(hub.services, hub.sessions, allowed_hosts=["testserver"]))
        tokens = {}
        with hub.sessions.begin() as session:
            for name, role, area in (("op-cg", "operator", CG), ("op-hx", "operator", HX),
                                     ("viewer", "viewer", COUNTY),
                                     ("investigator", "investigator", COUNTY)):  # fmt: skip
                create_user(session, name, role, password=PW, area=Area(**area))
        for name in ("op-cg", "op-hx", "viewer", "investigator"):
            r = client.post("/api/auth/login", json={"username": name, "password": PW})
            assert r.status_code == 200, r.text
            client.cookies.clear()
            tokens[name] = r.json()["token"]
        yield World(hub, client, tokens)
        hub.engine.dispose()


def test_segments_and_timeline(world: World) -> None:
    url = f"/api/recordings/cg-cam/segments?start={ORIGIN - 60}&end={ORIGIN + 3600}"
    r = world.get("op-cg", url)
    assert r.status_code == 200, r.text
    segs = r.json()
    assert len(segs) >= 2 and segs[0]["codec"] == "h264" and segs[0]["width"] == 640
    assert segs[0]["start"] == pytest.approx(ORIGIN, abs=0.2)
    assert segs[0]["alert_count"] == 0  # the alert was stored after the segment
    r = world.get("op-cg", f"/api/recordings/cg-cam/timeline?start={ORIGIN - 3600}&hours=2")
    assert r.status_code == 200, r.text
    tl = r.json()
    assert len(tl["hours"]) == 2 and tl["hours"][1]["segments"] == len(segs)
    assert tl["hours"][1]["recorded_s"] > 20 and tl["hours"][0]["recorded_s"] == 0
    assert len(tl["spans"]) == 1 and tl["spans"][0][0] == pytest.approx(ORIGIN, abs=0.2)
    assert [a["t"] for a in tl["alerts"]] == [ORIGIN + 5] and tl["hours"][1]["alerts"] == 1


def test_scope_and_permissions(world: World) -> None:
    url = f"/api/recordings/cg-cam/segments?start={ORIGIN}&end={ORIGIN + 60}"
    assert world.get("op-hx", url).status_code == 404  # another township's camera
    assert world.get("viewer", url).status_code == 403  # no evidence:read
    body = {"start": ORIGIN, "end": ORIGIN + 10, "case_number": "案-1", "reason": "r"}
    r = world.client.post("/api/recordings/cg-cam/export", json=body,
                          headers=world.headers("op-cg"))  # fmt: skip
    assert r.status_code == 403  # operators do not export


def test_a_range_plays_as_one_mp4_from_the_keyframe_before(world: World, tmp_path: Path) -> None:
    start, end = ORIGIN + 12, ORIGIN + 28
    r = world.get("op-cg", f"/api/recordings/cg-cam/video.mp4?start={start}&end={end}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    first = float(r.headers["x-recording-start"])
    assert first <= start and start - first < 12  # a keyframe at or before the start
    assert float(r.headers["x-recording-end"]) >= end - 1
    path = tmp_path / "range.mp4"
    path.write_bytes(r.content)
    probe = ffprobe(path)
    assert probe["streams"][0]["codec_name"] == "h264"
    assert float(probe["format"]["duration"]) >= end - start - 1
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
        assert packets[0].is_keyframe
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == len(packets)  # every packet decodes: no re-encoding, nothing broken
    ranged = world.get("op-cg", f"/api/recordings/cg-cam/video.mp4?start={start}&end={end}",
                       Range="bytes=100-199")  # fmt: skip
    assert ranged.status_code == 206 and ranged.content == r.content[100:200]  # the same file
    assert world.get("op-cg", "/api/recordings/cg-cam/video.mp4?start=1&end=9").status_code == 404
    with world.hub.sessions() as session:
        actions, _ = list_audit(session, limit=50, action="recording_playback")
    assert len(actions) == 1 and actions[0].actor == "op-cg"  # one viewing, several requests


def test_a_range_is_exported_signed_verified_and_kept(world: World, tmp_path: Path) -> None:
    body = {"start": ORIGIN + 2, "end": ORIGIN + 22, "case_number": "案-2026-07",
            "reason": "协查", "keep": True}  # fmt: skip
    r = world.client.post("/api/recordings/cg-cam/export", json=body,
                          headers=world.headers("investigator"))  # fmt: skip
    assert r.status_code == 200, r.text
    zpath = tmp_path / "case.zip"
    zpath.write_bytes(r.content)
    result = verify_export(zpath, world.hub.links.key)  # what `shaobing evidence verify` runs
    assert result.ok and result.files == 1, result.problems
    with zipfile.ZipFile(zpath) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        name = manifest["files"][0]["name"]
        (tmp_path / "x.mp4").write_bytes(zf.read(name))
    rec = manifest["recordings"][0]
    assert rec["camera"]["id"] == "cg-cam" and rec["start"] <= ORIGIN + 2 and rec["segments"]
    assert float(ffprobe(tmp_path / "x.mp4")["format"]["duration"]) >= 19
    with world.hub.sessions() as session:
        holds = list(session.scalars(select(RecordingHold)))
        actions, _ = list_audit(session, limit=50, action="recording_export")
    assert [h.case_number for h in holds] == ["案-2026-07"]
    assert actions and actions[0].actor == "investigator" and "kept" in (actions[0].detail or "")
    # An altered segment is refused, not exported.
    with world.hub.sessions() as session:
        seg = session.scalars(select(SegmentRecord).order_by(SegmentRecord.start)).first()
        assert seg is not None
    file = world.hub.loaded.recording_dir / seg.key
    original = file.read_bytes()
    file.write_bytes(original[:-10] + b"\x00" * 10)
    try:
        r = world.client.post("/api/recordings/cg-cam/export", json={**body, "keep": False},
                              headers=world.headers("investigator"))  # fmt: skip
        assert r.status_code == 409 and "SHA-256" in r.json()["detail"]
    finally:
        file.write_bytes(original)


def test_a_range_too_long_is_refused(world: World) -> None:
    r = world.get("op-cg", f"/api/recordings/cg-cam/video.mp4?start=0&end={4 * 3600}")
    assert r.status_code == 422
    assert io.BytesIO(r.content).read(1) == b"{"


def test_a_range_plays_as_hls_of_fragmented_mp4(world: World, tmp_path: Path) -> None:
    """The playlist and its parts, fetched as a player does, are written beside each other
    and read by ffprobe/ffmpeg as one HLS stream: every recorded packet, decode times
    rising across the segments, every frame decodes; the player starts at the asked time."""
    start, end = ORIGIN + 6, ORIGIN + 25
    r = world.get("op-cg", f"/api/recordings/cg-cam/playlist.m3u8?start={start}&end={end}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    lines = r.text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[-1] == "#EXT-X-ENDLIST"
    segs = world.get("op-cg", f"/api/recordings/cg-cam/segments?start={start}&end={end}").json()
    media = [x for x in lines if x.startswith("hls/") and ".m4s" in x]
    assert len(media) == len(segs) >= 2
    offset = float(next(x for x in lines if x.startswith("#EXT-X-START")).split("=")[1]
                   .split(",")[0])  # fmt: skip
    assert offset == pytest.approx(start - segs[0]["start"], abs=0.01)
    dates = [x.split(":", 1)[1] for x in lines if x.startswith("#EXT-X-PROGRAM-DATE-TIME")]
    assert len(dates) == len(segs)
    local = []
    for line in lines:
        if line.startswith('#EXT-X-MAP:URI="'):
            uri = line.split('"')[1]
            part = world.get("op-cg", f"/api/recordings/cg-cam/{uri}")
            assert part.status_code == 200 and part.content[4:8] == b"ftyp"
            (tmp_path / "init.mp4").write_bytes(part.content)
            local.append('#EXT-X-MAP:URI="init.mp4"')
        elif line.startswith("hls/"):
            part = world.get("op-cg", f"/api/recordings/cg-cam/{line}")
            assert part.status_code == 200 and part.content[4:8] in (b"moof", b"styp")
            name = f"m{len(local)}.m4s"
            (tmp_path / name).write_bytes(part.content)
            local.append(name)
        else:
            local.append(line)
    (tmp_path / "p.m3u8").write_text("\n".join(local) + "\n")
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-allowed_extensions", "ALL", "-show_entries",
         "packet=dts_time,flags", "-of", "csv=p=0", str(tmp_path / "p.m3u8")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    packets = [x.split(",") for x in out.stdout.split()]
    dts = [float(p[0]) for p in packets]
    assert packets[0][1].startswith("K") and dts == sorted(dts) and len(set(dts)) == len(dts)
    recorded = 0
    for seg in segs:
        with av.open(str(world.hub.loaded.recording_dir / _key(world, seg["id"]))) as c:
            recorded += sum(1 for p in c.demux(video=0) if p.size)
    assert len(packets) == recorded  # every packet of every segment, nothing re-encoded
    assert dts[-1] == pytest.approx(segs[-1]["end"] - segs[0]["start"], abs=1.0)
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-allowed_extensions", "ALL", "-i",
         str(tmp_path / "p.m3u8"), "-f", "null", "-"], capture_output=True, text=True,
    )  # fmt: skip
    assert decoded.returncode == 0 and not decoded.stderr.strip(), decoded.stderr
    with world.hub.sessions() as session:
        actions, _ = list_audit(session, limit=50, action="recording_playback")
    assert any("(HLS)" in (a.detail or "") and a.actor == "op-cg" for a in actions)


def _key(world: World, segment_id: str) -> str:
    with world.hub.sessions() as session:
        row = session.get(SegmentRecord, segment_id)
        assert row is not None
        return row.key


def test_hls_scope_permissions_and_bad_input(world: World) -> None:
    seg = world.get("op-cg", f"/api/recordings/cg-cam/segments?start={ORIGIN}&end={ORIGIN + 60}"
                    ).json()[0]  # fmt: skip
    url = f"/api/recordings/cg-cam/playlist.m3u8?start={ORIGIN}&end={ORIGIN + 60}"
    assert world.get("op-hx", url).status_code == 404  # another township's camera
    assert world.get("viewer", url).status_code == 403  # no evidence:read
    assert world.get("op-hx", f"/api/recordings/cg-cam/hls/{seg['id']}.m4s").status_code == 404
    assert world.get("viewer", f"/api/recordings/cg-cam/hls/{seg['id']}.m4s").status_code == 403
    assert world.get("op-cg", "/api/recordings/cg-cam/hls/nope.m4s").status_code == 404
    too_long = f"/api/recordings/cg-cam/playlist.m3u8?start=0&end={25 * 3600}"
    assert world.get("op-cg", too_long).status_code == 422
    empty = "/api/recordings/cg-cam/playlist.m3u8?start=1&end=9"
    assert world.get("op-cg", empty).status_code == 404


def test_a_case_export_of_alerts_with_keep_holds_their_recordings(world: World) -> None:
    """保全 for a case of alerts: each alert's recording is held from retention."""
    with world.hub.sessions() as session:
        alert_id = session.scalars(select(AlertRecord.id).where(
            AlertRecord.camera_id == "cg-cam")).one()  # fmt: skip
    body = {"alert_ids": [alert_id], "case_number": "案-2026-08", "reason": "协查", "keep": True}
    r = world.client.post("/api/exports", json=body, headers=world.headers("investigator"))
    assert r.status_code == 200, r.text
    with world.hub.sessions() as session:
        holds = list(session.scalars(select(RecordingHold).where(
            RecordingHold.case_number == "案-2026-08")))  # fmt: skip
        actions, _ = list_audit(session, limit=50, action="evidence_export")
    assert [(h.camera_id, h.created_by) for h in holds] == [("cg-cam", "investigator")]
    assert holds[0].start <= ORIGIN + 5 - 300 and holds[0].end >= ORIGIN + 5 + 300
    assert "kept" in (actions[0].detail or "")
