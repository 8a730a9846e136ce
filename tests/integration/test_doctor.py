"""``shaobing doctor`` and ``shaobing support-bundle`` against real sockets, files, SQLite,
Redis and an HTTP server; secrets never reach the report or the bundle."""

from __future__ import annotations

import http.server
import json
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shaobing.cli import main
from shaobing.config import load_config
from shaobing.db import open_database
from shaobing.doctor import Check, mask_config_text, report, run_checks

SECRET = "hunter2-very-secret"
REF = "${SHAOBING_FEEDBACK_SECRET:-change-me-to-a-long-secret}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[int]:
    """A real TCP listener (a camera's RTSP port, or another program on the API port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def write_config(tmp_path: Path, models_dir: Path, **extra: Any) -> Path:
    cfg: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "api": {"host": "127.0.0.1", "port": free_port()},
        "detector": {"model": "yolox_nano.onnx", "mirror_dir": str(models_dir)},
        "cameras": [],
    }
    cfg.update(extra)
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def by_item(checks: list[Check], prefix: str) -> Check:
    return next(c for c in checks if c.item.startswith(prefix))


def test_a_healthy_single_host(tmp_path: Path, models_dir: Path, listener: int) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video; the doctor checks that it is there")
    cams = [{"id": "c-file", "name": "f", "source": {"url": str(clip)}},
            {"id": "c-rtsp", "name": "r",
             "source": {"url": f"rtsp://admin:{SECRET}@127.0.0.1:{listener}/main"}}]  # fmt: skip
    loaded = load_config(str(write_config(tmp_path, models_dir, cameras=cams)))
    checks = run_checks(loaded)
    assert all(c.status == "ok" for c in checks), report(checks)
    assert "SHA-256 校验一致" in by_item(checks, "模型").detail
    assert "首次启动" in by_item(checks, "数据库").detail  # no database yet
    assert not (loaded.data_dir / "models").exists(), "the doctor copied the model"
    loaded.data_dir.mkdir()
    engine, _ = open_database(loaded.database_url)
    engine.dispose()
    assert "为最新" in by_item(checks := run_checks(loaded), "数据库").detail
    text = report(checks)
    assert "全部正常" in text and SECRET not in text and f"127.0.0.1:{listener}/main" in text


def test_what_a_field_engineer_must_see(tmp_path: Path, models_dir: Path, listener: int) -> None:
    closed = free_port()
    bad_model = tmp_path / "models" / "yolox_nano.onnx"
    bad_model.parent.mkdir()
    bad_model.write_bytes(b"truncated copy")
    cams = [{"id": "c-gone", "name": "g", "source": {"url": str(tmp_path / "no.mp4")}},
            {"id": "c-down", "name": "d",
             "source": {"url": f"rtsp://admin:{SECRET}@127.0.0.1:{closed}/main"}}]  # fmt: skip
    path = write_config(
        tmp_path, models_dir, cameras=cams,
        api={"host": "127.0.0.1", "port": listener},  # another program holds the port
        detector={"model": "yolox_nano.onnx", "models_dir": str(bad_model.parent)},
        bus={"kind": "redis", "url": f"redis://:{SECRET}@127.0.0.1:{closed}/0"},
    )  # fmt: skip
    checks = run_checks(load_config(str(path)))
    status = {c.item.split(" (")[0]: c.status for c in checks}
    assert by_item(checks, "端口").status == "fail" and "占用" in by_item(checks, "端口").detail
    assert by_item(checks, "模型").status == "fail" and "不符" in by_item(checks, "模型").detail
    assert by_item(checks, "Redis").status == "fail"
    assert by_item(checks, "摄像机 (camera) c-gone").status == "fail"
    assert by_item(checks, "摄像机 (camera) c-down").status == "fail"
    text = report(checks)
    assert SECRET not in text, text
    assert "故障" in text, status
    assert main(["doctor", "-c", str(path)]) == 1


def test_redis_and_the_clock(tmp_path: Path, models_dir: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = write_config(tmp_path, models_dir,
                            bus={"kind": "redis", "url": "redis://127.0.0.1:6379/0"})  # fmt: skip
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert main(["doctor", "-c", str(path), "--clock-url", url, "--json"]) == 0
    finally:
        server.shutdown()
    checks = {c["item"].split(" (")[0]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["Redis"]["status"] == "ok" and "版本" in checks["Redis"]["detail"]
    assert checks["时间同步"]["status"] == "ok", checks["时间同步"]


def test_support_bundle_masks_secrets(tmp_path: Path, models_dir: Path) -> None:
    cams = [{"id": "c1", "name": "n",
             "source": {"url": f"rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/main"}}]  # fmt: skip
    path = write_config(
        tmp_path, models_dir, cameras=cams,
        dispatch=[{"name": "centre", "url": "http://127.0.0.1:9/a", "secret": SECRET}],
        feedback=[{"name": "platform", "secret": REF}],
    )  # fmt: skip
    log = tmp_path / "hub.log"
    log.write_text(f"opening rtsp://admin:{SECRET}@10.0.0.5/x\nok\n")
    out = tmp_path / "support.tar.gz"
    assert main(["support-bundle", "-c", str(path), "-o", str(out), "--log", str(log)]) == 0
    with tarfile.open(out) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                 for m in tar.getmembers()}  # fmt: skip
    assert {"versions.json", "doctor.txt", "doctor.json", "config.yaml", "health.json",
            "logs/hub.log"} <= set(files)  # fmt: skip
    for name, text in files.items():
        assert SECRET not in text, name
    assert 'secret: "***"' in files["config.yaml"]
    assert REF in files["config.yaml"]  # names a secret, does not hold it
    assert yaml.safe_load(files["config.yaml"])["cameras"][0]["id"] == "c1"
    assert "rtsp://***@10.0.0.5/x" in files["logs/hub.log"]
    assert "fastapi" in files["versions.json"] and "hub not answering" in files["health.json"]


def test_mask_config_text_keeps_structure() -> None:
    text = "api:\n  link_secret: abc123  # same everywhere\n  port: 8080\npassword_hint: null\n"
    masked = mask_config_text(text)
    assert "abc123" not in masked and 'link_secret: "***"  # same everywhere' in masked
    assert "port: 8080" in masked and "password_hint: null" in masked
