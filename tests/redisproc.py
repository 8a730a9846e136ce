"""Redis for tests: the shared server at ``$SHAOBING_TEST_REDIS`` (default
redis://127.0.0.1:6379/0, started by scripts/test.sh when down) with a key prefix per
test, or a private ``redis-server`` on a free port that a test may kill and restart."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.peers.procs import free_port, wait_port

REDIS_URL = os.environ.get("SHAOBING_TEST_REDIS", "redis://127.0.0.1:6379/0")


def shared_redis() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc}); start it (scripts/test.sh)",
                    pytrace=False)  # fmt: skip
    return client


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix on the shared Redis; its keys are deleted after."""
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    client = shared_redis()
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


class RedisServer:
    """A private redis-server (AOF, fsync on every write) in ``directory``."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server not found (apt-get install redis-server)", pytrace=False)
        self.directory = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--protected-mode", "no", "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        if not wait_port(self.port, 10):
            raise RuntimeError(f"redis-server on {self.port} did not start")
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:  # loading the AOF answers LOADING until done
            try:
                client.ping()
                break
            except redis.exceptions.BusyLoadingError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown save (the AOF, fsynced per write, is all that remains)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
