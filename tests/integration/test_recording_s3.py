"""Recording into the evidence storage's S3 bucket (``recording.storage: evidence``): a
real RTSP camera recorded through the evidence storage port into moto's S3 server over
HTTP; the segments are objects under ``recordings/`` whose bytes match their index rows;
they play as HLS and export (SHA-256 checked) from the bucket; retention deletes them
from the bucket beyond the quota."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import av
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.export import verify_export
from camera_registry.config import IngestConfig, RecordConfig, SourceConfig
from camera_registry.status import StatusBoard
from core.storage_s3 import S3Bucket
from ingest.live import LiveFeed
from ingest.reader import StreamReader
from recording import hls
from recording.config import RecordingConfig
from recording.export import write_recording_export
from recording.service import RecordingService
from recording.store import SegmentRecord
from tests.integration.test_recording import db, wait_for  # noqa: F401 - a fixture
from tests.integration.test_storage import (
    ACCESS,
    SECRET_KEY,
    new_bucket,
    s3_endpoint,  # noqa: F401 - a fixture
)
from tests.peers.procs import RtspServer


def test_a_camera_is_recorded_into_the_s3_bucket_and_played_exported_and_retained(
    tmp_path: Path, db: sessionmaker[Session], rtsp_server: RtspServer,  # noqa: F811
    s3_endpoint: str,  # noqa: F811
) -> None:  # fmt: skip
    new_bucket(s3_endpoint, "county-evidence")
    bucket = S3Bucket(endpoint_url=s3_endpoint, bucket="county-evidence", prefix="ev/",
                      access_key=ACCESS, secret_key=SECRET_KEY,
                      path_root=tmp_path / "ev")  # fmt: skip
    cfg = RecordingConfig(storage="evidence")
    service = RecordingService(cfg, tmp_path / "unused", tmp_path / "spool", db, bucket)
    assert service.retention.disk is None  # a bucket: the quota only
    feed = LiveFeed()
    url = rtsp_server.url("crosswalk")
    reader = StreamReader("cam1", lambda: url, SourceConfig(url=url), IngestConfig(),
                          detect_fps=1, box=(320, 320), on_frame=lambda f: None,
                          status=StatusBoard(), packet_sink=feed)  # fmt: skip
    service.recorder.add_camera("cam1", RecordConfig(mode="continuous", segment_s=4), feed)
    service.recorder.start()
    reader.start()
    try:
        assert wait_for(lambda: len(_rows(db)) >= 3, timeout=60), service.health()
    finally:
        reader.stop()
        reader.join(5)
        service.recorder.stop()
    rows = _rows(db)
    assert not (tmp_path / "unused").exists()  # nothing written to the folder
    objects = {o.key: o for o in bucket.objects("recordings/")}
    assert {r.key for r in rows} == set(objects)
    for r in rows:
        assert r.key.startswith("recordings/cam1/")
        with bucket.open(r.key) as f:
            data = f.read()
        assert hashlib.sha256(data).hexdigest() == r.sha256 and len(data) == r.size_bytes
    # HLS from the bucket: the init and media parts decode.
    init, media = hls.fragment(bucket, rows[1].key, 12.5)
    with av.open(io.BytesIO(init + media)) as c:
        tb = c.streams.video[0].time_base
        frames = list(c.decode(video=0))
    assert frames and abs(float(frames[0].pts * tb) - 12.5) < 0.5  # on the playlist's timeline
    # An export from the bucket, every segment's SHA-256 checked, verifies.
    key = b"k" * 32
    zpath = tmp_path / "case.zip"
    write_recording_export(zpath, {"id": "cam1"}, rows, rows[0].start, rows[-1].end, key,
                           storage=bucket, user="inv", case_number="案-S3",
                           reason="协查")  # fmt: skip
    result = verify_export(zpath, key)
    assert result.ok, result.problems
    with zipfile.ZipFile(zpath) as zf:
        assert any(n.startswith("recordings/cam1_") for n in zf.namelist())
    # Retention beyond a tiny quota deletes the oldest objects from the bucket and rows.
    total = sum(r.size_bytes for r in rows)
    quota = (total - rows[0].size_bytes) / 1024**3
    service.retention.cfg = RecordingConfig(storage="evidence", quota_gb=quota)
    assert service.retention.sweep() == [rows[0].key]
    assert rows[0].key not in {o.key for o in bucket.objects("recordings/")}
    assert [r.key for r in _rows(db)] == [r.key for r in rows[1:]]


def _rows(db: sessionmaker[Session]) -> list[SegmentRecord]:  # noqa: F811
    with db() as session:
        return list(session.scalars(select(SegmentRecord).order_by(SegmentRecord.start)))
