"""Distributed mode end to end: real roles as processes, real Redis and PostgreSQL, a
real RTSP server and a real HTTP receiver.

* two workers share four cameras through leases; one is killed with SIGKILL in the
  middle of the clips: its cameras resume on the other within the lease time + 5 s,
  and every alert reaches the receiver exactly once (a restarted worker forwards
  what its spool held);
* Redis, then PostgreSQL, restarted while alerts flow: every role recovers by itself
  and nothing is lost.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from alerts.signing import IDEMPOTENCY_HEADER
from tests.databases import pg_schema
from tests.hubproc import ADMIN_PASSWORD
from tests.integration.test_live import decode_flv
from tests.peers.procs import RtspServer, free_port
from tests.peers.receiver import Receiver
from tests.redisproc import REDIS_URL, RedisServer, redis_prefix

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
SECRET = "test-hmac-key-0123"
LEASE_S = 4.0


def camera(cam_id: str, url: str) -> dict[str, Any]:
    return {
        "id": cam_id, "name": f"测试 {cam_id}", "programme": "xueliang",
        "area": {"county": "示例县", "township": "城关镇"},
        "source": {"url": url}, "detect_fps": 5,
        "zones": [{"name": "square", "points": WHOLE}],
        "rules": [{"name": "square-loitering", "type": "loitering", "zone": "square",
                   "min_duration_s": 3}],
    }  # fmt: skip


def distributed_config(
    workdir: Path, models_dir: Path, *, db_url: str, redis_url: str, prefix: str,
    cameras: list[dict[str, Any]], receiver_url: str, api_port: int,
) -> Path:  # fmt: skip
    config = {
        "data_dir": str(workdir / "data"),
        "storage": {"database_url": db_url},
        "bus": {"kind": "redis", "url": redis_url, "prefix": prefix, "lease_s": LEASE_S,
                "claim_idle_s": 5, "frame_interval_s": 1},
        "api": {"port": api_port, "link_secret": "distributed-link-secret-0123"},
        "logging": {"level": "INFO"},
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "alerts": {"cooldown_s": 600, "clips_enabled": False},
        "cameras": cameras,
        "dispatch": [{"name": "centre", "url": f"{receiver_url}/dispatch", "secret": SECRET,
                      "backoff_initial_s": 0.5, "backoff_max_s": 2, "timeout_s": 2}],
    }  # fmt: skip
    path = workdir / "hub.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


class Role:
    """One ``shaobing <role>`` process."""

    def __init__(self, workdir: Path, config: Path, role: str, *args: str) -> None:
        self.name = f"{role}{'-' + args[-1] if role == 'worker' else ''}"
        self.cmd = [sys.executable, "-m", "shaobing.cli", role, "--config", str(config), *args]
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir = workdir

    def start(self) -> Role:
        log = self.log_path.open("ab")
        env = {**os.environ, "SHAOBING_ADMIN_PASSWORD": ADMIN_PASSWORD, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=ROOT, start_new_session=True)  # fmt: skip
        log.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Deployment:
    def __init__(self, workdir: Path, config: Path, api_port: int, r: redis.Redis, prefix: str):
        self.workdir = workdir
        self.config = config
        self.base = f"http://127.0.0.1:{api_port}"
        self.r = r
        self.prefix = prefix
        self.roles: dict[str, Role] = {}
        self._token: str | None = None

    def start(self, role: str, *args: str) -> Role:
        proc = Role(self.workdir, self.config, role, *args).start()
        self.roles[proc.name] = proc
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{r.log()[-3000:]}" for n, r in self.roles.items())

    def wait(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except (httpx.HTTPError, redis.exceptions.RedisError) as exc:
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})"
                             f"\n{self.logs()}")  # fmt: skip

    def get(self, path: str, **params: Any) -> Any:
        if self._token is None:
            resp = httpx.post(f"{self.base}/api/auth/login", timeout=5,
                              json={"username": "admin", "password": ADMIN_PASSWORD})  # fmt: skip
            resp.raise_for_status()
            self._token = resp.json()["token"]
        resp = httpx.get(f"{self.base}{path}", params=params, timeout=10,
                         headers={"Authorization": f"Bearer {self._token}"})  # fmt: skip
        resp.raise_for_status()
        return resp.json()

    def holders(self, cameras: list[str]) -> dict[str, str]:
        values = self.r.mget([f"{self.prefix}:lease:{c}" for c in cameras])
        return {c: v.decode().split("@", 1)[0] for c, v in zip(cameras, values, strict=True) if v}

    def entry(self, camera_id: str) -> dict[str, Any]:
        raw = self.r.get(f"{self.prefix}:cam:{camera_id}")
        return json.loads(raw) if raw else {}

    def stop(self) -> None:
        for role in self.roles.values():
            role.stop()


class Sse:
    """A console listening to ``/api/events`` (server-sent events) in a thread."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.events: list[tuple[str, Any]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=90))

    def start(self) -> Sse:
        self._thread.start()
        return self

    def _run(self) -> None:
        event = ""
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as resp:
                for line in resp.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        self.events.append((event, json.loads(line[6:])))
        except httpx.HTTPError:
            pass

    def stop(self) -> None:
        self._client.close()


def read_live(url: str, token: str | None, seconds: float) -> bytes:
    """What a player receives of a live stream in ``seconds``."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", url, headers=headers, timeout=10) as resp:
        assert resp.status_code == 200, resp.read()[:300]
        for chunk in resp.iter_raw():
            chunks.append(chunk)
            if time.monotonic() > deadline:
                break
    return b"".join(chunks)


@pytest.fixture
def four_cameras(rtsp_server_factory: Callable[..., RtspServer]) -> Iterator[list[dict[str, Any]]]:
    server = rtsp_server_factory({f"c{i}": "crosswalk_people.mp4" for i in range(1, 5)})
    yield [camera(f"cam-{i}", server.url(f"c{i}")) for i in range(1, 5)]


def delivered_exactly_once(d: Deployment, rx: Receiver) -> None:
    """Every message of every stored alert (an incident: created, then its updates)
    reached the receiver, each exactly once."""

    def settled() -> set[str] | None:
        if d.get("/healthz")["events_pending"]:
            return None
        items = d.get("/api/alerts", limit=500)["items"]
        queued = {f"{a['id']}:{m['event']}:{m['sequence']}" for a in items
                  for m in d.get(f"/api/alerts/{a['id']}")["deliveries"]}  # fmt: skip
        keys = {h[IDEMPOTENCY_HEADER] for h, _, _ in rx.requests}
        created = {f"{a['id']}:alert.created:1" for a in items}
        return queued if created <= queued and queued <= keys else None

    queued = d.wait("every alert delivered", settled, 60)
    time.sleep(2)  # a late duplicate would arrive now
    keys = Counter(h[IDEMPOTENCY_HEADER] for h, _, _ in rx.requests)
    assert queued == set(keys)  # none lost, none extra
    assert set(keys.values()) == {1}, keys  # none twice


def test_a_killed_workers_cameras_resume_on_the_other(
    tmp_path: Path, models_dir: Path, four_cameras: list[dict[str, Any]], receiver: Receiver
) -> None:
    ids = [c["id"] for c in four_cameras]
    with pg_schema() as db_url, redis_prefix() as prefix:
        api_port = free_port()
        config = distributed_config(tmp_path, models_dir, db_url=db_url, redis_url=REDIS_URL,
                                    prefix=prefix, cameras=four_cameras,
                                    receiver_url=receiver.url, api_port=api_port)  # fmt: skip
        d = Deployment(tmp_path, config, api_port, redis.Redis.from_url(REDIS_URL), prefix)
        try:
            d.start("api")
            d.start("alerts")
            d.start("dispatcher")
            metrics_port = free_port()
            w1 = d.start("worker", "--metrics-port", str(metrics_port), "--name", "w1")
            w2 = d.start("worker", "--name", "w2")
            # Both workers hold two cameras each and analyse them.
            d.wait("two cameras per worker", lambda: sorted(Counter(
                d.holders(ids).values()).values()) == [2, 2], 90)  # fmt: skip
            d.wait(
                "alerts from both workers' cameras",
                lambda: (
                    len({a["camera"]["id"] for a in d.get("/api/alerts", limit=500)["items"]}) == 4
                ),
                120,
            )
            lost = [c for c, w in d.holders(ids).items() if w == "w2"]
            sse = Sse(f"{d.base}/api/events?duration_s=60", d._token).start()
            w2.kill()  # mid-clip: the crosswalk goes on for minutes
            killed_at = time.time()
            d.wait(f"{lost} resumed on w1", lambda: all(
                d.holders(lost).get(c) == "w1" and d.entry(c).get("status", {}).get("state")
                == "online" and d.entry(c)["status"]["last_frame_at"] > killed_at
                for c in lost), LEASE_S + 5)  # fmt: skip
            resumed_in = time.time() - killed_at
            # New alerts from the cameras that moved, made by w1.
            d.wait("alerts from the moved cameras after the kill", lambda: {
                a["camera"]["id"] for a in d.get("/api/alerts", limit=500)["items"]
                if a["created_at"] > killed_at} >= set(lost), 60)  # fmt: skip
            # The console's live feed on the API node hears of alerts the alerts role
            # stored in another process (the feed travels on Redis pub/sub).
            d.wait(
                "a live-feed alert of a moved camera",
                lambda: any(
                    e == "alert" and data["camera"]["id"] in lost for e, data in sse.events
                ),
                30,
            )
            sse.stop()
            # A status of a moved camera read through the API role (from Redis).
            cam = d.get(f"/api/cameras/{lost[0]}")
            assert cam["status"]["state"] == "online"
            snap = httpx.get(f"{d.base}/api/cameras/{lost[0]}/snapshot.jpg", timeout=5,
                             headers={"Authorization": f"Bearer {d._token}"})  # fmt: skip
            assert snap.status_code == 200 and snap.content[:3] == b"\xff\xd8\xff"
            # Its live video through the API node, relayed from the worker that holds it
            # now (shaobing/media.py): the camera's own H.264, from a keyframe.
            data = read_live(f"{d.base}/api/cameras/{lost[0]}/live.flv", d._token, 4.0)
            frames = decode_flv(data, cut=True)
            assert frames and frames[0].key_frame and len(frames) >= 40, len(frames)
            # The worker's endpoint serves signed requests only (an API node's).
            base = d.entry(lost[0])["live_base"]
            assert httpx.get(f"{base}/live/{lost[0]}.flv", timeout=5).status_code == 403
            # w2 comes back (systemd restarts it): it forwards whatever its spool held
            # and takes its share again.
            w2 = d.start("worker", "--name", "w2")
            d.wait("shares balanced again", lambda: sorted(Counter(
                d.holders(ids).values()).values()) == [2, 2], 60)  # fmt: skip
            assert not list((tmp_path / "data" / "spool" / "w2").glob("*.json"))
            metrics = httpx.get(f"{d.base}/metrics", timeout=5).text
            assert "shaobing_outbox_rows" in metrics
            # The worker's own /metrics: the cameras it holds, its lease holders.
            mine = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            held = [c for c, w in d.holders(ids).items() if w == "w1"]
            for c in held:
                assert f'shaobing_camera_lease_holder{{camera="{c}"' in mine
                assert f'shaobing_camera_analysed_fps{{camera="{c}"}}' in mine
            for role in d.roles.values():
                assert role.alive(), role.log()[-3000:]
            w1.stop()
            w2.stop()
            delivered_exactly_once(d, receiver)
        finally:
            d.stop()
    print(f"cameras resumed {resumed_in:.1f} s after SIGKILL (lease {LEASE_S} s)")


def test_redis_then_postgresql_restarted_while_alerts_flow(
    tmp_path: Path, models_dir: Path, four_cameras: list[dict[str, Any]], receiver: Receiver
) -> None:
    cams = four_cameras[:2]
    ids = [c["id"] for c in cams]
    server = RedisServer(tmp_path / "redis").start()
    # Our own PostgreSQL: restarting the shared one would hit the other tests using it.
    pg = PostgresServer(Path(tempfile.mkdtemp(prefix="sb-pg-"))).start()
    try:
        api_port = free_port()
        config = distributed_config(tmp_path, models_dir, db_url=pg.url, redis_url=server.url,
                                    prefix="shaobing", cameras=cams, receiver_url=receiver.url,
                                    api_port=api_port)  # fmt: skip
        d = Deployment(tmp_path, config, api_port, redis.Redis(port=server.port), "shaobing")
        try:
            for role in ("api", "alerts", "dispatcher"):
                d.start(role)
            d.start("worker", "--name", "w1")
            d.wait("an alert", lambda: d.get("/api/alerts")["items"], 120)
            # Redis killed (only its fsynced AOF remains) and back 3 s later.
            server.kill()
            time.sleep(3)
            server.start()
            after_redis = time.time()
            d.wait(
                "cameras online again",
                lambda: all(
                    d.entry(c).get("status", {}).get("state") == "online"
                    and d.entry(c)["status"]["last_frame_at"] > after_redis
                    for c in ids
                ),
                60,
            )
            # PostgreSQL restarted (fast shutdown: every session cut), down for 3 s.
            pg.stop()
            time.sleep(3)
            pg.start()
            after_pg = time.time()
            d.wait("new alerts after both outages", lambda: [
                a for a in d.get("/api/alerts", limit=500)["items"]
                if a["incident"]["last_at"] > after_pg], 120)  # an incident grew, or a new one
            for role in d.roles.values():
                assert role.alive(), role.log()[-3000:]
            d.roles["worker-w1"].stop()
            delivered_exactly_once(d, receiver)
        finally:
            d.stop()
    finally:
        server.stop()
        pg.stop()
        shutil.rmtree(pg.directory, ignore_errors=True)


class PostgresServer:
    """A private PostgreSQL cluster (initdb as the ``postgres`` user) on a free port."""

    BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))

    def __init__(self, directory: Path) -> None:
        if not self.BIN:
            pytest.fail("PostgreSQL server binaries not found (apt-get install postgresql)",
                        pytrace=False)  # fmt: skip
        self.bin = self.BIN[-1]
        self.directory = directory
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=60)

    def start(self) -> PostgresServer:
        data = self.directory / "data"
        if not data.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.directory, "postgres")
            self._as_postgres(str(self.bin / "initdb"), "-D", str(data), "-A", "trust",
                              "-U", "postgres")  # fmt: skip
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(data), "-w", "-l",
                          str(self.directory / "pg.log"), "-o",
                          f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
                          "start")  # fmt: skip
        return self

    def stop(self) -> None:
        data = self.directory / "data"
        if (data / "postmaster.pid").exists():
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                              "stop")  # fmt: skip
