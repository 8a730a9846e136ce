"""The evidence storage port on the real hub path: an alert's snapshots and clip written
through it by the producer and the clips thread, served by the API (ranges, SHA-256
header), exported and verified, deleted by retention; rows holding absolute paths
(older versions) still served; nothing outside the storage root ever served, exported or
deleted. Each runs on the shared directory and on an S3-compatible bucket (moto's
standalone server over real HTTP on 127.0.0.1, when installed)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from alerts import queries
from alerts.domain.model import Alert, EvidenceRef
from alerts.evidence import encode_jpeg
from alerts.export import MANIFEST, verify_export
from analytics.types import Event
from api.app import create_app
from core.storage import (
    OutsideStorage,
    StorageError,
    config_problems,
    normalise_key,
)
from core.storage_directory import SharedDirectory
from shaobing.bootstrap import Hub
from shaobing.config import ConfigError, parse_config
from tests.factories import make_alert, store
from tests.integration.test_clips import fill_ring, stream_time
from tracks.store import TrackRecord, add_track

PASSWORD = "storage-pass-0123"
SECRET = "hub-link-secret-0123456789"
CAM = "cg-0001"
ACCESS, SECRET_KEY = "AKIDSTORAGETEST01", "storage-test-secret-key-0123456789"
DAY = 86400.0


# -- an S3-compatible server: moto's standalone server, a real HTTP process ------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3-compatible server over real HTTP on loopback: moto's standalone server
    (boto3 and moto[server] are in the test extra)."""
    python = sys.executable
    if subprocess.run([python, "-c", "import boto3, moto.server, flask"],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.fail("boto3 and moto[server] are needed (the test extra: scripts/setup.sh "
                    "test)", pytrace=False)  # fmt: skip
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("wb")
    proc = subprocess.Popen([python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None, "the S3 server exited"
                assert time.monotonic() < deadline, "the S3 server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def new_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS,
                 aws_secret_access_key=SECRET_KEY,
                 region_name="us-east-1").create_bucket(Bucket=name)  # fmt: skip


# -- the hub, on either storage ----------------------------------------------------------


class Frame:
    """What the evidence renderer needs of a frame: a full-resolution picture."""

    frame_size = (320, 180)

    def source_bgr(self) -> np.ndarray:
        image = np.full((360, 640, 3), 90, np.uint8)
        image[100:300, 200:400] = (30, 160, 220)
        return image


def loitering(camera_id: str) -> Event:
    return Event(camera_id=camera_id, rule="r", type="loitering", ts=time.time(), pts=5.0,
                 track_ids=[1], object_class="person", zone="z", severity="low",
                 measured=12.0, threshold=10.0, unit="s", explanation="person 12 s ≥ 10 s",
                 confidence=0.9, box=(100.0, 50.0, 200.0, 150.0), started_pts=3.0)  # fmt: skip


@pytest.fixture(params=["directory", "s3"])
def hub(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Hub]:
    cfg: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"), "api": {"link_secret": SECRET},
        "detector": {"model": str(models_dir / "yolox_nano.onnx")},
        "alerts": {"clip_pre_s": 2, "clip_post_s": 2},
    }  # fmt: skip
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"evidence-{os.urandom(4).hex()}"
        new_bucket(endpoint, bucket)
        monkeypatch.setenv("SHAOBING_S3_ACCESS_KEY", ACCESS)
        monkeypatch.setenv("SHAOBING_S3_SECRET_KEY", SECRET_KEY)
        cfg["storage"] = {"evidence": {"kind": "s3", "endpoint_url": endpoint,
                                       "bucket": bucket, "prefix": "county/"}}  # fmt: skip
    h = Hub(parse_config(cfg, str(tmp_path / "hub.yaml"), tmp_path))
    assert h.ensure_admin(PASSWORD) == PASSWORD
    yield h
    h.engine.dispose()


def client_of(hub: Hub) -> TestClient:
    client = TestClient(create_app(hub.services, hub.sessions, allowed_hosts=["testserver"]))
    r = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.cookies.clear()
    client.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return client


def stored(hub: Hub, alert_id: str) -> Alert | None:
    with hub.sessions() as session:
        return queries.get_alert(session, alert_id)


def wait_for(what: str, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alert_with_evidence(hub: Hub, crosswalk: Path) -> Alert:
    """An alert raised through the producer: snapshots rendered by the evidence thread,
    a real clip cut by the clips thread, both stored through the hub's storage."""
    ring = hub.producer.clips.ring(CAM)
    assert ring is not None
    # The recorded clip (28.6 s) as if it had been received from 20 s ago on: the ring
    # already holds the seconds after the alert, so the clips thread cuts it at once.
    base = time.time() - 20
    ring.clock = lambda packet: base + stream_time(packet)
    fill_ring(crosswalk, ring)
    hub.alert_workers.start()
    hub.producer.start()
    try:
        alert_id = hub.producer.on_event(loitering(CAM), Frame(), None, t=0.0)
        assert alert_id is not None
        alert = wait_for(
            "the alert with its snapshots and clip",
            lambda: (a := stored(hub, alert_id)) and "clip" in a.evidence and a,
        )
    finally:
        hub.producer.stop()
        hub.alert_workers.stop()
    assert set(alert.evidence) == {"snapshot", "annotated_snapshot", "clip"}
    return alert


def read(hub: Hub, ref: str) -> bytes:
    with hub.evidence.open(ref) as f:
        return f.read()


def export(client: TestClient, alert_ids: list[str], target: Path) -> dict[str, Any]:
    r = client.post("/api/exports", json={"alert_ids": alert_ids, "case_number": "2026-7",
                                          "reason": "取证"})  # fmt: skip
    assert r.status_code == 200, r.text
    target.write_bytes(r.content)
    result = verify_export(target, SECRET.encode())
    assert result.ok, result.problems
    with zipfile.ZipFile(target) as zf:
        manifest: dict[str, Any] = json.loads(zf.read(MANIFEST))
    return manifest


def test_evidence_written_served_exported_and_deleted_through_the_storage(
    hub: Hub, videos_dir: Path, tmp_path: Path
) -> None:
    alert = alert_with_evidence(hub, videos_dir / "crosswalk_people.mp4")
    day = time.strftime("%Y%m%d", time.gmtime(alert.created_at))
    # New references are keys relative to the storage root, the same for both kinds.
    assert alert.evidence["snapshot"].path == f"{CAM}/{day}/{alert.id}.jpg"
    assert alert.evidence["annotated_snapshot"].path == f"{CAM}/{day}/{alert.id}.annotated.jpg"
    assert alert.evidence["clip"].path == f"{CAM}/{day}/{alert.id}.mp4"
    for ref in alert.evidence.values():
        assert hashlib.sha256(read(hub, ref.path)).hexdigest() == ref.sha256
    local = hub.evidence.local_path(alert.evidence["clip"].path)
    if isinstance(hub.evidence, SharedDirectory):
        assert local == hub.snapshot_dir / CAM / day / f"{alert.id}.mp4"
        assert stat.S_IMODE(local.parent.stat().st_mode) == 0o700
    else:
        assert local is None and not (hub.snapshot_dir / CAM).exists()  # only in the bucket

    # Served by the API from storage.open (or the file), with the SHA-256 header.
    client = client_of(hub)
    for params, kind in (({}, "snapshot"), ({"annotated": "true"}, "annotated_snapshot")):
        r = client.get(f"/api/alerts/{alert.id}/snapshot.jpg", params=params)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert hashlib.sha256(r.content).hexdigest() == alert.evidence[kind].sha256
        assert r.headers["x-content-sha256"] == alert.evidence[kind].sha256
    clip_url = f"/api/alerts/{alert.id}/clip.mp4"
    whole = client.get(clip_url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(whole.content).hexdigest() == alert.evidence["clip"].sha256
    assert whole.headers["x-content-sha256"] == alert.evidence["clip"].sha256
    part = client.get(clip_url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    # A signed link (what dispatch targets get) reads the same object.
    signed = hub.links.url(alert.id, "snapshot").removeprefix(hub.public_url)
    assert TestClient(client.app).get(signed).content == read(hub, alert.evidence["snapshot"].path)

    # Exported: every file copied from the storage, hashed, signed.
    manifest = export(client, [alert.id], tmp_path / "case.zip")
    assert len(manifest["files"]) == 3 and manifest["missing_on_disk"] == []
    with zipfile.ZipFile(tmp_path / "case.zip") as zf:
        assert zf.read(f"{alert.id}/clip.mp4") == whole.content

    # Retention: an open alert's files are kept, the track index's are not its business,
    # an old stray object goes; once resolved, the alert's go too.
    hub.evidence.put("tracks/cam/20200101/t.jpg", b"thumbnail")
    stray = hub.evidence.put(f"{CAM}/20200101/stray.jpg", b"stray")
    retention = hub.producer.retention
    assert retention is not None
    later = time.time() + 100 * DAY
    assert retention.sweep(later) == [stray]
    hub.alerts.transition(alert.id, "resolve", actor="admin")
    assert sorted(retention.sweep(later)) == sorted(r.path for r in alert.evidence.values())
    assert [o.key for o in hub.evidence.objects()] == ["tracks/cam/20200101/t.jpg"]
    assert client.get(f"/api/alerts/{alert.id}/snapshot.jpg").status_code == 404
    assert client.get(clip_url).status_code == 404
    gone = export(client, [alert.id], tmp_path / "gone.zip")
    assert gone["files"] == [] and len(gone["missing_on_disk"]) == 3


def test_rows_with_absolute_paths_still_work_and_nothing_outside_is_served(
    tmp_path: Path, models_dir: Path
) -> None:
    hub = Hub(parse_config({"data_dir": str(tmp_path / "data"), "api": {"link_secret": SECRET},
                            "detector": {"model": str(models_dir / "yolox_nano.onnx")}},
                           "hub.yaml", tmp_path))  # fmt: skip
    try:
        hub.ensure_admin(PASSWORD)
        client = client_of(hub)
        # An older version wrote absolute paths under the snapshot directory.
        old = hub.snapshot_dir / CAM / "20250101" / "old.jpg"
        old.parent.mkdir(parents=True)
        data = encode_jpeg(np.zeros((36, 64, 3), np.uint8))
        old.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        legacy = make_alert(1, camera_id=CAM)
        legacy.evidence = {"snapshot": EvidenceRef(str(old), sha),
                           "clip": EvidenceRef(str(old), sha, 0.0, 1.0)}  # fmt: skip
        store(hub.sessions, legacy)
        r = client.get(f"/api/alerts/{legacy.id}/snapshot.jpg")
        assert r.status_code == 200 and r.content == data
        assert client.get(f"/api/alerts/{legacy.id}/clip.mp4").status_code == 200
        manifest = export(client, [legacy.id], tmp_path / "legacy.zip")
        assert [f["name"] for f in manifest["files"]] == [f"{legacy.id}/snapshot.jpg",
                                                          f"{legacy.id}/clip.mp4"]  # fmt: skip
        # Open: retention keeps it, though the row names it by its absolute path.
        retention = hub.producer.retention
        assert retention is not None
        assert retention.sweep(time.time() + 100 * DAY) == [] and old.exists()

        # Outside the root: a file next to the data, by absolute path, by '..', by a link.
        outside = tmp_path / "outside.jpg"
        outside.write_bytes(b"not evidence")
        link = hub.snapshot_dir / CAM / "20250101" / "link.jpg"
        link.symlink_to(outside)
        refs = [str(outside), "../outside.jpg", f"{CAM}/../../../outside.jpg",
                f"{CAM}/20250101/link.jpg", "/etc/passwd", "cam/\x00.jpg"]  # fmt: skip
        bad_ids = []
        for i, ref in enumerate(refs, 10):
            bad = make_alert(i, camera_id=CAM)
            bad.evidence = {"snapshot": EvidenceRef(ref, "0" * 64),
                            "clip": EvidenceRef(ref, "0" * 64, 0.0, 1.0)}  # fmt: skip
            store(hub.sessions, bad)
            bad_ids.append(bad.id)
            assert client.get(f"/api/alerts/{bad.id}/snapshot.jpg").status_code == 404, ref
            assert client.get(f"/api/alerts/{bad.id}/clip.mp4").status_code == 404, ref
            with pytest.raises(OutsideStorage):
                hub.evidence.open(ref)
            with pytest.raises(OutsideStorage):
                hub.evidence.delete(ref)
        # Exported as missing, never copied; retention never touches them.
        manifest = export(client, bad_ids, tmp_path / "bad.zip")
        assert manifest["files"] == [] and len(manifest["missing_on_disk"]) == 2 * len(refs)
        for alert_id in bad_ids:
            hub.alerts.transition(alert_id, "resolve", actor="admin")
        retention.sweep(time.time() + 100 * DAY)
        assert outside.read_bytes() == b"not evidence"

        # Track files: keys under tracks/, absolute paths of <data_dir>/tracks (where
        # older versions kept them) still served; a path elsewhere is not.
        legacy_thumb = hub.loaded.data_dir / "tracks" / CAM / "20250101" / "t.jpg"
        legacy_thumb.parent.mkdir(parents=True)
        legacy_thumb.write_bytes(data)
        new_thumb = hub.evidence.put(f"tracks/{CAM}/20250101/n.jpg", data)
        with hub.sessions.begin() as session:
            for tid, thumb in (("t-old", str(legacy_thumb)), ("t-new", new_thumb),
                               ("t-bad", str(outside))):  # fmt: skip
                add_track(session, TrackRecord(
                    id=tid, camera_id=CAM, camera_name="cam", track_id=1,
                    object_class="person", colour="red", first_seen=1.0, last_seen=2.0,
                    frames=10, score=0.8, thumbnail_path=thumb, clip_path=thumb,
                    clip_sha256="x", size_bytes=0, created_at=2.0,
                ))  # fmt: skip
        assert client.get("/api/tracks/t-old/thumbnail.jpg").content == data
        assert client.get("/api/tracks/t-new/thumbnail.jpg").content == data
        part = client.get("/api/tracks/t-new/clip.mp4", headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == data[:10]
        assert client.get("/api/tracks/t-bad/thumbnail.jpg").status_code == 404
        assert client.get("/api/tracks/t-bad/clip.mp4").status_code == 404
        # The track retention deletes the files it may, and every row.
        assert hub.tracks.sweep(now=100 * DAY) == 3
        assert not legacy_thumb.exists() and outside.exists()
        assert [o.key for o in hub.evidence.objects(prefix="tracks/")] == []
    finally:
        hub.engine.dispose()


# -- the adapters ---------------------------------------------------------------------------


def test_keys_are_normalised_and_traversal_refused() -> None:
    assert normalise_key("a//b/./c.jpg") == "a/b/c.jpg"
    for bad in ("", "..", "a/../../b", "a\\b", "a/\x00", "/"):
        with pytest.raises(OutsideStorage):
            normalise_key(bad)


def test_shared_directory_writes_atomically_owner_only(tmp_path: Path) -> None:
    storage = SharedDirectory(tmp_path / "ev")
    ref = storage.put("cam/20260101/a.jpg", b"jpeg")
    assert ref == "cam/20260101/a.jpg"
    path = tmp_path / "ev" / "cam" / "20260101" / "a.jpg"
    assert path.read_bytes() == b"jpeg" and stat.S_IMODE(path.stat().st_mode) == 0o600
    for level in (path.parent, path.parent.parent, tmp_path / "ev"):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700
    assert storage.key(str(path)) == ref  # an absolute path inside the root: its key
    assert [(o.key, o.size) for o in storage.objects()] == [(ref, 4)]
    assert list(storage.objects(prefix="tracks/")) == []
    with storage.open(ref) as f:
        f.seek(2)
        assert f.read() == b"eg"
    storage.delete(ref)
    storage.delete(ref)  # missing: nothing happens
    with pytest.raises(FileNotFoundError):
        storage.open(ref)
    assert storage.check(shared_required=False, data_dir=tmp_path / "data") == []
    problems = storage.check(shared_required=True, data_dir=tmp_path)
    assert len(problems) == 1 and "inside data_dir" in problems[0]
    assert list(storage.objects()) == []  # the probe leaves nothing behind


def test_s3_bucket_objects_ranges_and_masked_errors(s3_endpoint: str) -> None:
    from core.storage_s3 import S3Bucket

    new_bucket(s3_endpoint, "adapter")
    bucket = S3Bucket(endpoint_url=s3_endpoint, bucket="adapter", prefix="ev/",
                      access_key=ACCESS, secret_key=SECRET_KEY,
                      path_root=Path("/srv/shaobing/evidence"))  # fmt: skip
    data = bytes(range(256)) * 8192  # 2 MiB: more than one buffered read
    ref = bucket.put("cam/20260101/a.mp4", data)
    assert ref == "cam/20260101/a.mp4"
    with bucket.open(ref) as f:
        assert f.read() == data
        f.seek(1_500_000)
        assert f.read(10) == data[1_500_000:1_500_010]
        assert f.seek(0, 2) == len(data)
    # A row written when the evidence was in a directory, copied into the bucket.
    with bucket.open("/srv/shaobing/evidence/cam/20260101/a.mp4") as f:
        assert f.read(4) == data[:4]
    assert [(o.key, o.size) for o in bucket.objects()] == [(ref, len(data))]
    assert bucket.check(shared_required=True, data_dir=Path("/data")) == []
    for outside in ("../x", "/etc/passwd", "/srv/shaobing/evidence/../secret"):
        with pytest.raises(OutsideStorage):
            bucket.open(outside)
    bucket.delete(ref)
    bucket.delete(ref)
    with pytest.raises(FileNotFoundError):
        bucket.open(ref)
    # Failures never show a credential: not in errors, problems, repr or a log.
    down = S3Bucket(endpoint_url=f"http://127.0.0.1:{_free_port()}", bucket="adapter",
                    access_key=ACCESS, secret_key=SECRET_KEY, timeout_s=1)  # fmt: skip
    with pytest.raises(StorageError) as failed:
        down.put("a/b.jpg", b"x")
    problems = down.check(shared_required=True, data_dir=Path("/data"))
    masked = down.mask(f"key {ACCESS} secret {SECRET_KEY}")
    for text in (str(failed.value), " ".join(problems), repr(down), masked):
        assert ACCESS not in text and SECRET_KEY not in text
    assert masked == "key *** secret ***"


def test_a_storage_down_answers_503_and_never_shows_a_credential(
    tmp_path: Path,
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("boto3", reason="the s3 extra (boto3) is not installed")
    monkeypatch.setenv("SHAOBING_S3_ACCESS_KEY", ACCESS)
    monkeypatch.setenv("SHAOBING_S3_SECRET_KEY", SECRET_KEY)
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    hub = Hub(parse_config({
        "data_dir": str(tmp_path / "data"), "api": {"link_secret": SECRET},
        "detector": {"model": str(models_dir / "yolox_nano.onnx")},
        "storage": {"evidence": {"kind": "s3", "endpoint_url": dead, "bucket": "evidence",
                                 "timeout_s": 1}},
    }, "hub.yaml", tmp_path))  # fmt: skip
    try:
        hub.ensure_admin(PASSWORD)
        client = client_of(hub)
        alert = make_alert(1, camera_id=CAM)
        alert.evidence = {
            "snapshot": EvidenceRef(f"{CAM}/20260101/a.jpg", "0" * 64),
            "clip": EvidenceRef(f"{CAM}/20260101/a.mp4", "0" * 64, 0.0, 1.0),
        }
        store(hub.sessions, alert)
        r = client.get(f"/api/alerts/{alert.id}/snapshot.jpg")
        assert r.status_code == 503 and r.json()["detail"] == "evidence storage unavailable"
        r = client.post("/api/exports", json={"alert_ids": [alert.id], "case_number": "c",
                                              "reason": "r"})  # fmt: skip
        assert r.status_code == 503
        retention = hub.producer.retention
        assert retention is not None
        with pytest.raises(StorageError) as failed:
            retention.sweep()
        logged = caplog.text + str(failed.value) + repr(hub.evidence)
        assert "evidence storage" in caplog.text
        assert ACCESS not in logged and SECRET_KEY not in logged
    finally:
        hub.engine.dispose()


# -- configuration --------------------------------------------------------------------------


def problems_of(data: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "hub.yaml", tmp_path)
    return [str(p) for p in exc.value.problems]


def test_storage_config_errors_name_the_file_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHAOBING_S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("MY_S3_SECRET", raising=False)
    s3 = {"kind": "s3", "endpoint_url": "http://127.0.0.1:9000", "bucket": "evidence",
          "secret_key_env": "MY_S3_SECRET"}  # fmt: skip
    found = problems_of({"storage": {"evidence": s3}}, tmp_path)
    assert "hub.yaml: storage.evidence.access_key_env: environment variable " \
           "SHAOBING_S3_ACCESS_KEY (the S3 access key) is not set" in found  # fmt: skip
    assert "hub.yaml: storage.evidence.secret_key_env: environment variable MY_S3_SECRET " \
           "(the S3 secret key) is not set" in found  # fmt: skip
    found = problems_of({"storage": {"evidence": {**s3, "bucket": "No_Such"}}}, tmp_path)
    assert any(p.startswith("hub.yaml: storage.evidence.bucket: ") for p in found), found
    found = problems_of({"storage": {"evidence": {**s3, "bukket": "x"}}}, tmp_path)
    assert "hub.yaml: storage.evidence.bukket: unknown key (misspelt?)" in found
    found = problems_of({"storage": {"evidence": {"kind": "ftp"}}}, tmp_path)
    assert len(found) == 1 and found[0].startswith("hub.yaml: storage.evidence: ")
    creds = {**s3, "endpoint_url": "http://ak:hunter2-secret@127.0.0.1:9000"}
    found = problems_of({"storage": {"evidence": creds}}, tmp_path)
    assert any(p.startswith("hub.yaml: storage.evidence.endpoint_url: no credentials in the "
                            "URL") for p in found), found  # fmt: skip
    assert "hunter2" not in " ".join(found)
    # The default: the directory of alerts.snapshot_dir; nothing to check.
    loaded = parse_config({"alerts": {"snapshot_dir": "ev"}}, "hub.yaml", tmp_path)
    assert loaded.config.storage.evidence.kind == "directory"
    assert config_problems(loaded.config.storage.evidence) == []
