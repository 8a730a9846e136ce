"""Bad inputs the hub meets in the field: passwords in URL paths and queries, a wrong
camera password, a stored camera record this version cannot read, a changed secret
key, file permissions. Real hub, real database, real sockets; no mocks."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from camera_registry.config import IngestConfig, SourceConfig
from camera_registry.status import StatusBoard
from ingest.reader import AUTH_FAILED_MESSAGE, StreamReader
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from tests.peers.procs import RtspServer, free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "admin-pass-0123"
QUERY_PW = "Qry-Secr3t-1"
PATH_PW = "Pth-Secr3t-2"
XM_PW = "Xm-Secr3t-3"


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def make_hub(tmp_path: Path, models_dir: Path, cameras: list[dict[str, Any]], **extra: Any) -> Hub:
    loaded = parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
            "ingest": {"reconnect_initial_s": 0.1, "reconnect_max_s": 0.2},
            "cameras": cameras,
            **extra,
        },
        "test.yaml",
        tmp_path,
    )
    hub = Hub(loaded)
    hub.ensure_admin(ADMIN_PASSWORD)
    return hub


def login(hub: Hub) -> TestClient:
    client = TestClient(create_app(hub.services, hub.sessions))
    token = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    client.headers["Authorization"] = f"Bearer {token.json()['token']}"
    return client


# -- 1. credentials in URL paths and queries never leave the process ---------------------


def test_url_credentials_never_reach_logs_status_api_or_alerts(
    tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = free_port()  # nothing listens: the reader logs the failing URL
    cameras = [
        {"id": "dahua", "source": {"url": f"rtsp://127.0.0.1:{closed}/cam/realmonitor"
                                          f"?channel=1&subtype=0&user=admin&password={QUERY_PW}"}},
        {"id": "nvr", "source": {"url": f"rtsp://127.0.0.1:{closed}/user=admin&password="
                                        f"{PATH_PW}&channel=1&stream=0.sdp?"}},
        {"id": "xmeye", "source": {"url": f"rtsp://127.0.0.1:{closed}/user=admin_password="
                                          f"{XM_PW}_channel=1_stream=0.sdp?real_stream"}},
    ]  # fmt: skip
    hub = make_hub(tmp_path, models_dir, cameras, alerts={"camera_offline_s": 0.5})
    caplog.set_level(logging.INFO)
    hub.start()
    try:
        client = login(hub)
        failing = [hub.status.get(c["id"]) for c in cameras]
        wait_for("three cameras failing", lambda: all(s.reconnects >= 1 for s in failing), 20)
        alerts = wait_for("offline alerts", lambda: (
            a := client.get("/api/alerts", params={"type": "camera_fault"}).json())["total"] >= 3
            and a, 20)  # fmt: skip
        seen = {
            "log": caplog.text,
            "status": json.dumps([s.to_dict() for s in hub.status.all()]),
            "api": client.get("/api/cameras").text
            + "".join(client.get(f"/api/cameras/{c['id']}").text for c in cameras),
            "alerts": json.dumps(alerts)
            + "".join(client.get(f"/api/alerts/{a['id']}").text for a in alerts["items"]),
        }
        with hub.sessions() as session:
            rows = session.execute(text("SELECT source_display, config_json FROM cameras"))
            seen["stored"] = " ".join(" ".join(row) for row in rows)
    finally:
        hub.stop()
    # The failure was logged with the URL (masked), so the test looked at the right lines.
    assert "refused" in seen["log"].lower() and "password=***" in seen["log"]
    for where, shown in seen.items():
        for secret in (QUERY_PW, PATH_PW, XM_PW):
            assert secret not in shown, f"{secret} in {where}"
    dahua = hub.status.snapshot("dahua")
    assert dahua is not None and dahua.stream_url is not None
    assert dahua.stream_url.endswith("?channel=1&subtype=0&user=***&password=***")


# -- 2. a wrong password backs off instead of locking the account ------------------------


class AuthRtspPeer:
    """An RTSP camera on 127.0.0.1 that rejects every request with ``401 Unauthorized``
    and a Digest challenge (a wrong password), or, after :meth:`accept`, relays each new
    connection to a real RTSP server (the password was fixed). Counts connections."""

    def __init__(
        self, challenge: bytes = b'Digest realm="IP Camera(C1234)", nonce="0a4f113b"'
    ) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.challenge = challenge
        self.authorizations: list[bytes] = []  # the Authorization headers received
        self.connections = 0
        self.upstream: int | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "cam/realmonitor?channel=1&subtype=0") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"

    def accept(self, upstream_port: int) -> None:
        self.upstream = upstream_port

    def refuse(self) -> None:
        """Back to 401, dropping the relayed connections (the camera's password changed)."""
        self.upstream = None
        with self._lock:
            for conn in self._open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.refuse()
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            target = self._relay if self.upstream is not None else self._reject
            threading.Thread(target=target, args=(conn,), daemon=True).start()

    def _reject(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:]
                                  if b":" in line)  # fmt: skip
                    fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
                    if b"authorization" in fields:
                        self.authorizations.append(fields[b"authorization"])
                    conn.sendall(
                        b"RTSP/1.0 401 Unauthorized\r\nCSeq: " + fields.get(b"cseq", b"0")
                        + b"\r\nWWW-Authenticate: " + self.challenge + b"\r\n\r\n"
                    )  # fmt: skip

    def _relay(self, conn: socket.socket) -> None:
        assert self.upstream is not None
        up = socket.create_connection(("127.0.0.1", self.upstream))
        with self._lock:
            self._open.append(up)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pump, args=(up, conn), daemon=True).start()
        pump(conn, up)


@pytest.fixture
def auth_peer() -> Iterator[AuthRtspPeer]:
    peer = AuthRtspPeer()
    yield peer
    peer.close()


def start_reader(url: str, auth_retry_s: float) -> tuple[StreamReader, StatusBoard]:
    status = StatusBoard()
    ingest = IngestConfig(
        reconnect_initial_s=0.05,
        reconnect_max_s=0.1,
        open_timeout_s=3,
        read_timeout_s=3,
        auth_retry_s=auth_retry_s,
    )
    source = SourceConfig(url=url, username="admin", password="Wrong-pw-1")
    reader = StreamReader(
        "cam",
        lambda: url.replace("rtsp://", "rtsp://admin:Wrong-pw-1@"),
        source,
        ingest,
        detect_fps=2,
        box=(320, 320),
        on_frame=lambda f: None,
        status=status,
        secrets=("Wrong-pw-1",),
    )
    reader.start()
    return reader, status


def test_wrong_password_backs_off_and_reports_auth_failed(auth_peer: AuthRtspPeer) -> None:
    reader, status = start_reader(auth_peer.url(), auth_retry_s=300)
    try:
        st = wait_for("auth_failed", lambda: (s := status.snapshot("cam")) and
                      s.state == "auth_failed" and s, 10)  # fmt: skip
        time.sleep(3.0)  # at the normal back-off (0.1 s) this would be ~30 more attempts
        assert auth_peer.connections == 3
        assert st.last_error.startswith(AUTH_FAILED_MESSAGE)
        assert "401" in st.last_error and "Wrong-pw-1" not in st.last_error
    finally:
        reader.stop()
        reader.join(timeout=5)
    assert not reader.is_alive()  # the long wait does not delay a stop


def test_a_working_connection_resets_the_auth_failure_count(
    auth_peer: AuthRtspPeer, rtsp_server_factory: Callable[..., RtspServer]
) -> None:
    server = rtsp_server_factory({"cam": "crosswalk_people.mp4"})
    reader, status = start_reader(auth_peer.url("cam"), auth_retry_s=1.5)
    try:
        wait_for("auth_failed", lambda: status.get("cam").state == "auth_failed", 10)
        assert auth_peer.connections == 3
        auth_peer.accept(server.port)  # the password was fixed on the camera
        wait_for("online", lambda: status.get("cam").state == "online", 15)
        assert auth_peer.connections == 4  # one attempt after auth_retry_s, not sooner
        auth_peer.refuse()
        # The count starts again: two fast retries while offline, then the long wait.
        wait_for("auth_failed again", lambda: status.get("cam").state == "auth_failed", 10)
        assert auth_peer.connections == 7
        time.sleep(1.0)
        assert auth_peer.connections == 7
    finally:
        reader.stop()
        reader.join(timeout=5)


# -- 3 / 7. a stored record this version cannot read; a changed key ----------------------


def camera(cam_id: str, **source: Any) -> dict[str, Any]:
    return {"id": cam_id, "name": cam_id, "enabled": False, "source": source}


def test_unreadable_record_is_reported_not_a_500(tmp_path: Path, models_dir: Path) -> None:
    hub = make_hub(tmp_path, models_dir, [camera("good", url="rtsp://10.9.9.9/a")])
    with hub.sessions.begin() as session:  # as a newer version might have written it
        from camera_registry.store import CameraRecord

        record = session.get(CameraRecord, "good")
        assert record is not None
        data = json.loads(record.config_json)
        data["id"], data["future_option"], data["source"]["password"] = "newer", 1, "N-pw-9"
        session.add(CameraRecord(
            id="newer", name="newer", source_kind="url", source_display="rtsp://10.9.9.8/b",
            config_json=json.dumps(data), origin="import"))  # fmt: skip
    hub.start()
    try:
        client = login(hub)
        listed = client.get("/api/cameras")
        assert listed.status_code == 200, listed.text
        by_id = {c["id"]: c for c in listed.json()}
        assert set(by_id) == {"good", "newer"}
        assert by_id["newer"]["status"]["state"] == "invalid_config"
        assert "future_option" in by_id["newer"]["status"]["last_error"]
        one = client.get("/api/cameras/newer")
        assert one.status_code == 200 and one.json()["status"]["state"] == "invalid_config"
        assert "N-pw-9" not in listed.text + one.text
        assert by_id["good"]["status"]["state"] == "disabled"
    finally:
        hub.stop()


def test_changed_secret_key_is_reported_and_the_hub_runs(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from camera_registry.store import upsert_camera
    from core.secrets import SecretCipher

    monkeypatch.setenv("SHAOBING_SECRET_KEY", "first key: long and random enough")
    hub = make_hub(tmp_path, models_dir, [])
    from analytics.config import CameraConfig

    imported = CameraConfig.model_validate(camera("imp", url="rtsp://a:Imp-pw-5@10.9.9.9/a"))
    with hub.sessions.begin() as session:
        upsert_camera(session, imported, origin="import", cipher=hub.cipher)
    hub.engine.dispose()
    monkeypatch.setenv("SHAOBING_SECRET_KEY", SecretCipher.new_key())  # the key was lost
    hub = make_hub(tmp_path, models_dir, [camera("cfg", url="rtsp://b:Cfg-pw-6@10.9.9.9/b")])
    assert [c.id for c in hub.load_cameras()] == ["cfg"]  # re-encrypted with the new key
    st = hub.status.snapshot("imp")
    assert st is not None and st.state == "invalid_config"
    assert "cannot be decrypted" in (st.last_error or "")
    assert login(hub).get("/api/cameras").status_code == 200
    hub.engine.dispose()


def test_stored_passwords_are_encrypted_and_the_hub_still_opens_the_camera(
    tmp_path: Path, models_dir: Path
) -> None:
    """The raw column holds no password; the hub decrypts it to open the stream (a
    camera asking for Basic auth receives it)."""
    auth_peer = AuthRtspPeer(challenge=b'Basic realm="IPC"')
    url = auth_peer.url()
    source = {"url": url, "username": "admin", "password": "Enc-pw-7"}
    hub = make_hub(tmp_path, models_dir, [{"id": "c1", "source": source}])
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    raw = sqlite3.connect(tmp_path / "data" / "shaobing.db").execute(
        "SELECT config_json FROM cameras").fetchone()[0]  # fmt: skip
    assert "Enc-pw-7" not in raw and "enc:v1:" in raw
    (cam,) = hub.load_cameras()
    assert cam.source.password == "Enc-pw-7"
    hub.start()
    try:
        wait_for("credentials sent", lambda: auth_peer.authorizations, 10)
    finally:
        hub.stop()
        auth_peer.close()
    basic = base64.b64encode(b"admin:Enc-pw-7")
    assert auth_peer.authorizations[0] == b"Basic " + basic


# -- 6. file modes -------------------------------------------------------------------------


def test_data_dir_and_database_are_private(tmp_path: Path, models_dir: Path) -> None:
    old = os.umask(0o022)
    try:
        hub = make_hub(tmp_path, models_dir, [])
    finally:
        os.umask(old)
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "snapshots").stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "shaobing.db").stat().st_mode) == 0o600
    hub.engine.dispose()


# -- 4. the CLI import: encodings, the hub's key -----------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SHAOBING_SECRET_KEY"}
    return subprocess.run([sys.executable, "-m", "shaobing.cli", *args], capture_output=True,
                          text=True, check=False, cwd=ROOT, env=env)  # fmt: skip


def test_cli_imports_gbk_and_the_hub_decrypts_it(tmp_path: Path, models_dir: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    cams = tmp_path / "cams.csv"  # as Excel saves it on a Chinese Windows
    cams.write_bytes("id,name,url,username,password,county,enabled\r\n"
                     "v-01,村口东,rtsp://10.2.0.1/ch1,admin,Gbk-pw-8,示例县,否\r\n"
                     .encode("gbk"))  # fmt: skip
    proc = cli("cameras", "import", str(cams), "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    listing = cli("cameras", "list", "--config", str(config)).stdout
    assert listing.startswith("v-01\t村口东\tother\t示例县\trtsp://10.2.0.1/ch1")
    assert "invalid_config" not in listing
    data = tmp_path / "data"
    assert stat.S_IMODE((data / "secret.key").stat().st_mode) == 0o600
    for db_file in data.glob("shaobing.db*"):  # the database and its WAL
        assert b"Gbk-pw-8" not in db_file.read_bytes()
    hub = make_hub(tmp_path, models_dir, [])
    (cam,) = hub.load_cameras()
    assert (cam.name, cam.source.password, cam.enabled) == ("村口东", "Gbk-pw-8", False)
    hub.engine.dispose()


def test_cli_import_of_an_undecodable_file_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    cams = tmp_path / "cams.csv"
    cams.write_bytes("id,name,url\nv-01,村口,rtsp://10.2.0.1/ch1\n".encode("utf-16"))
    proc = cli("cameras", "import", str(cams), "--config", str(config))
    assert proc.returncode == 2
    assert "neither UTF-8 nor GBK/GB18030" in proc.stderr and "Traceback" not in proc.stderr
