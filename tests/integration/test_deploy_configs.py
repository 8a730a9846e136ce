"""The county configurations shipped in deploy/ load and validate (what the docs show)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shaobing.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("name", ["compose.yaml", "county.yaml"])
def test_deploy_configs_load(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SHAOBING_DB_PASSWORD", "SHAOBING_REDIS_PASSWORD", "SHAOBING_LINK_SECRET",
                "SHAOBING_DISPATCH_CENTRE_SECRET"):  # fmt: skip
        monkeypatch.setenv(var, "x" * 24)
    loaded = load_config(DEPLOY / name)
    bus = loaded.config.bus
    assert bus.kind == "redis" and bus.media_listen == "0.0.0.0:8091"
    assert loaded.config.storage.database_url is not None
    assert loaded.config.storage.database_url.startswith("postgresql")
