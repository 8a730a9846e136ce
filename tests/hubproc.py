"""Run ``shaobing run`` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.peers.procs import free_port

#: The first admin's password in hubs started by tests (SHAOBING_ADMIN_PASSWORD).
ADMIN_PASSWORD = "e2e-admin-pass-42"


class HubProcess:
    """A hub started from a config dict written to ``workdir/hub.yaml``. ``get``/``post``
    log in as the first admin on first use."""

    def __init__(self, workdir: Path, config: dict[str, Any], *, env: dict[str, str] | None = None,
                 args: Sequence[str] = ()):  # fmt: skip
        self.workdir = workdir
        self.args = list(args)  # more `shaobing run` options (--workers N)
        self.port = free_port()
        config = {"data_dir": str(workdir / "data"), **config}
        config.setdefault("api", {})["port"] = self.port
        config.setdefault("logging", {"level": "INFO"})
        self.config_path = workdir / "hub.yaml"
        self.config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        self.log_path = workdir / "hub.log"
        self.env = {**os.environ, "SHAOBING_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {}),
                    "PYTHONUNBUFFERED": "1"}  # fmt: skip
        self._token: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> HubProcess:
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "shaobing.cli", "run", "--config", str(self.config_path)]
        self.proc = subprocess.Popen(
            [*command, *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"hub API not up after {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log(self) -> str:
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path.exists()
            else ""
        )

    def auth(self) -> dict[str, str]:
        """Authorization header of the first admin (logs in once)."""
        if self._token is None:
            resp = httpx.post(f"{self.base}/api/auth/login", timeout=5,
                              json={"username": "admin", "password": ADMIN_PASSWORD})  # fmt: skip
            resp.raise_for_status()
            self._token = resp.json()["token"]
        return {"Authorization": f"Bearer {self._token}"}

    def get(self, path: str, **params: Any) -> Any:
        resp = httpx.get(f"{self.base}{path}", params=params, headers=self.auth(), timeout=5)
        resp.raise_for_status()
        return resp.json()

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(), **kwargs.pop("headers", {})}
        return httpx.post(f"{self.base}{path}", json=body, headers=headers, timeout=5, **kwargs)

    def raw(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers=self.auth(), timeout=5)

    def camera(self, camera_id: str) -> dict[str, Any]:
        return self.get(f"/api/cameras/{camera_id}")  # type: ignore[no-any-return]

    def wait(
        self, what: str, check: Callable[[], Any], timeout: float, interval: float = 0.25
    ) -> Any:
        """Poll ``check`` until it returns something truthy; fail with the hub log."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except httpx.HTTPError as exc:
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(interval)
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what} (last: {last!r})\n"
            f"--- hub log ---\n{self.log()[-6000:]}"
        )
