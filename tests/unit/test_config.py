"""Configuration: validation errors name the file and the field; env secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shaobing.config import ConfigError, load_config

GOOD = """
data_dir: ./data
dispatch:
  - {name: centre, url: "http://127.0.0.1:9/alerts", secret: "${TEST_DISPATCH_SECRET}"}
cameras:
  - id: cam-1
    source: {url: "rtsp://admin:pw1234@10.1.2.3:554/Streaming/Channels/102"}
    zones: [{name: z, points: [[0, 0], [1, 0], [1, 1]]}]
    rules: [{name: r, type: loitering, zone: z, min_duration_s: 30}]
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return [str(p) for p in err.value.problems]


def test_good_config_strips_credentials_from_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DISPATCH_SECRET", "s3cret-key")
    loaded = load_config(write(tmp_path, GOOD))
    cam = loaded.config.cameras[0]
    assert cam.source.url == "rtsp://10.1.2.3:554/Streaming/Channels/102"
    assert (cam.source.username, cam.source.password) == ("admin", "pw1234")
    assert loaded.config.dispatch[0].secret == "s3cret-key"
    assert loaded.database_url == f"sqlite:///{tmp_path / 'data' / 'shaobing.db'}"


def test_env_overrides_camera_password_and_dispatch_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DISPATCH_SECRET", "from-file")
    monkeypatch.setenv("SHAOBING_CAMERA_CAM_1_PASSWORD", "from-env")
    monkeypatch.setenv("SHAOBING_DISPATCH_CENTRE_SECRET", "env-secret")
    loaded = load_config(write(tmp_path, GOOD))
    assert loaded.config.cameras[0].source.password == "from-env"
    assert loaded.config.dispatch[0].secret == "env-secret"


def test_missing_env_variable_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_DISPATCH_SECRET", raising=False)
    path = write(tmp_path, GOOD)
    found = problems(path)  # the cause first, then what it leads to (a target without secret)
    assert found[0] == (
        f"{path}: dispatch[0].secret: environment variable TEST_DISPATCH_SECRET is not set"
    )
    assert all("dispatch[0]" in p for p in found)


def test_misspelt_key_is_an_error_naming_file_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD.replace("min_duration_s", "min_duraton_s").replace("${TEST_DISPATCH_SECRET}", "x"),
    )
    assert problems(path) == [
        f"{path}: cameras[0](id=cam-1).rules[0](name=r).min_duraton_s: unknown key (misspelt?)"
    ]


def test_malformed_url_names_the_field_without_the_password(tmp_path: Path) -> None:
    text = GOOD.replace("rtsp://admin", "rtps://admin").replace("${TEST_DISPATCH_SECRET}", "x")
    found = problems(write(tmp_path, text))
    assert len(found) == 1
    assert "cameras[0](id=cam-1).source.url: unsupported scheme 'rtps'" in found[0]
    assert "pw1234" not in found[0]


def test_rule_naming_an_unknown_zone(tmp_path: Path) -> None:
    text = GOOD.replace("zone: z", "zone: nowhere").replace("${TEST_DISPATCH_SECRET}", "x")
    found = problems(write(tmp_path, text))
    assert len(found) == 1 and "cameras[0](id=cam-1)" in found[0]
    assert "rule 'r' names zone 'nowhere', which is not defined" in found[0]


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "cameras:\n  - id: [unclosed\n"))
    assert len(found) == 1 and "line" in found[0] and "invalid YAML" in found[0]


def test_check_config_cli_exit_code_and_output(tmp_path: Path) -> None:
    path = write(tmp_path, "detecter: {}\ncameras: []\n")
    proc = subprocess.run(
        [sys.executable, "-m", "shaobing.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert f"{path}: detecter: unknown key (misspelt?)" in proc.stderr


def test_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    loaded = load_config(root / "configs" / "example.yaml")
    assert loaded.config.cameras[0].rules[0].type == "loitering"


def test_run_refuses_a_bad_config_naming_file_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path, "cameras:\n  - id: c1\n    source: {url: 'rtsp://h/x'}\n    detect_fsp: 5\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "shaobing.cli", "run", "--config", str(path)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"{path}: cameras[0](id=c1).detect_fsp: unknown key (misspelt?)" in proc.stderr


ROUTED = """
dispatch: [{name: centre, url: "http://127.0.0.1:9/alerts", unsigned: true}]
departments:
  - {id: cg-pcs, name: 城关派出所, kind: police, level: township,
     areas: [{county: 示例县, township: 城关镇}], targets: [centre]}
routing:
  - {name: persons, types: [loitering], departments: [cg-pcs], ack_deadline_s: 300}
"""


def test_routing_config_is_checked_with_file_and_field(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ROUTED)).config.routing[0].departments == ["cg-pcs"]
    typo = write(tmp_path, ROUTED.replace("types: [loitering]", "types: [loitring]"), "t.yaml")
    (problem,) = problems(typo)
    assert problem.startswith(f"{typo}: routing[0](name=persons).types: unknown alert type")
    unknown_dep = write(tmp_path, ROUTED.replace("departments: [cg-pcs]", "departments: [x]"))
    assert "routing rule 'persons' names unknown department(s) ['x']" in problems(unknown_dep)[0]
    unknown_target = write(tmp_path, ROUTED.replace("targets: [centre]", "targets: [nope]"))
    assert (
        "department 'cg-pcs' names unknown dispatch target(s) ['nope']"
        in (problems(unknown_target)[0])
    )
    bad_level = write(tmp_path, ROUTED.replace("level: township", "level: province"))
    assert "departments[0](id=cg-pcs).level" in problems(bad_level)[0]
    short = write(tmp_path, ROUTED + "feedback: [{name: platform, secret: short}]\n")
    assert "feedback[0](name=platform).secret" in problems(short)[0]


def test_long_rule_and_zone_names_are_config_errors(tmp_path: Path) -> None:
    long = "长" * 101
    text = GOOD.replace("name: z,", f"name: {long},").replace("zone: z,", f"zone: {long},")
    found = problems(write(tmp_path, text))
    assert any("zones[0]" in p and "at most 100 characters" in p for p in found), found


@pytest.mark.parametrize("value", ["maybe", '"no"', '"true"', "2"])
def test_camera_enabled_accepts_only_booleans(tmp_path: Path, value: str) -> None:
    text = GOOD.replace("  - id: cam-1\n", f"  - id: cam-1\n    enabled: {value}\n")
    found = problems(write(tmp_path, text.replace("${TEST_DISPATCH_SECRET}", "x")))
    assert len(found) == 1 and "cameras[0](id=cam-1).enabled: " in found[0]
    assert "valid boolean" in found[0]


def test_camera_enabled_yaml_booleans_still_work(tmp_path: Path) -> None:
    text = GOOD.replace("  - id: cam-1\n", "  - id: cam-1\n    enabled: no\n")
    loaded = load_config(write(tmp_path, text.replace("${TEST_DISPATCH_SECRET}", "x")))
    assert loaded.config.cameras[0].enabled is False
    assert loaded.config.ingest.auth_retry_s == 300.0  # the lock-out back-off's default


def test_url_with_query_credentials_error_does_not_show_the_password(tmp_path: Path) -> None:
    text = GOOD.replace(
        "rtsp://admin:pw1234@10.1.2.3:554/Streaming/Channels/102",
        "rtps://10.1.2.3/cam/realmonitor?channel=1&user=admin&password=pw1234",
    ).replace("${TEST_DISPATCH_SECRET}", "x")
    (found,) = problems(write(tmp_path, text))
    assert "source.url: unsupported scheme 'rtps'" in found and "pw1234" not in found


def test_every_enabled_flag_takes_only_booleans(tmp_path: Path) -> None:
    text = GOOD.replace("min_duration_s: 30}", "min_duration_s: 30, enabled: maybe}")
    text += "api: {enabled: 'yes'}\n"
    found = problems(write(tmp_path, text))
    rule = "cameras[0](id=cam-1).rules[0](name=r).enabled: Input should be a valid boolean"
    assert any(p.endswith(rule) for p in found), found
    assert any(p.endswith(": api.enabled: Input should be a valid boolean") for p in found), found
