"""The state-change log a console's feed reads instead of every camera every second: the
embedded status board's (the workers' stream in Redis: tests/integration/)."""

from __future__ import annotations

from pathlib import Path

from accounts.domain import Principal, sees_area
from camera_registry.status import StatusBoard


def test_the_board_names_the_cameras_whose_state_changed() -> None:
    board = StatusBoard()
    cursor, changed = board.changes("")
    assert changed is None  # first look: read everything
    board.update("a", state="online")
    board.update("b", state="offline")
    cursor, changed = board.changes(cursor)
    assert changed == ["a", "a", "b", "b"]  # new to the board, then its state
    board.update("a", input_fps=5.0)  # not a state change
    cursor, changed = board.changes(cursor)
    assert changed == []
    board.update("a", state="offline")
    cursor, changed = board.changes(cursor)
    assert changed == ["a"]


def test_a_reader_too_far_behind_reads_everything_again() -> None:
    board = StatusBoard()
    cursor, _ = board.changes("")
    for i in range(StatusBoard.LOG + 5):
        board.update(f"cam-{i}", state="online")
    _, changed = board.changes(cursor)
    assert changed is None
    assert board.changes("not-a-cursor")[1] is None


class Services:
    """The part of HubServices the feed reads: the status board."""

    def __init__(self, status: StatusBoard) -> None:
        self.status = status


def test_the_feed_reports_state_changes_of_visible_cameras_only() -> None:
    from api.routers.live import CameraWatch, camera_changes

    board = StatusBoard()
    for cid in ("a", "b", "hidden"):
        board.update(cid, state="online")
    hub, watch = Services(board), CameraWatch()
    visible = {"a", "b"}
    assert camera_changes(hub, visible, watch) == []  # type: ignore[arg-type]
    board.update("a", state="offline")
    board.update("hidden", state="offline")
    events = camera_changes(hub, visible, watch)  # type: ignore[arg-type]
    assert len(events) == 1 and b'"id": "a"' in events[0] and b'"offline"' in events[0]
    assert camera_changes(hub, visible, watch) == []  # type: ignore[arg-type]
    for i in range(StatusBoard.LOG + 1):  # the log overflows: one full read, b reported
        board.update(f"x{i}", state="online")
    board.update("b", state="offline")
    events = camera_changes(hub, visible, watch)  # type: ignore[arg-type]
    assert len(events) == 1 and b'"id": "b"' in events[0]


class NoFullRead(StatusBoard):
    """A board that fails a read of every camera's state (what the feed must not do
    on its first look, nor per second)."""

    def states(self) -> dict[str, str]:
        raise AssertionError("every state read")


def test_the_first_look_of_a_feed_reads_no_state_and_changes_follow() -> None:
    from api.routers.live import CameraWatch, camera_changes

    board = NoFullRead()
    board.update("a", state="online")
    hub, watch = Services(board), CameraWatch()
    assert camera_changes(hub, None, watch) == []  # type: ignore[arg-type]
    board.update("a", state="offline")
    board.update("b", state="online")
    events = camera_changes(hub, None, watch)  # type: ignore[arg-type]  # None: all cameras
    assert [b'"id": "a"' in e for e in events] == [True, False]
    assert b'"offline"' in events[0] and b'"id": "b"' in events[1]


def test_the_feed_lists_no_camera_for_an_admin_and_the_ids_of_a_scope(tmp_path: Path) -> None:
    from analytics.config import CameraConfig
    from api.routers.live import feed_cameras
    from camera_registry.store import upsert_camera
    from core.area import Area
    from core.secrets import load_or_create_cipher
    from shaobing.db import open_database

    _, sessions = open_database(f"sqlite:///{tmp_path / 'reg.db'}")
    cipher = load_or_create_cipher(tmp_path / "secret.key")
    places = {"c1": ("县", "镇A", "村1"), "c2": ("县", "镇A", None), "c3": ("县", "镇B", "村1"),
              "c4": ("县", None, None), "c5": ("别县", "镇A", None)}  # fmt: skip
    with sessions.begin() as session:
        for cid, (county, town, village) in places.items():
            cam = CameraConfig.model_validate({
                "id": cid, "source": {"url": "rtsp://127.0.0.1:9/x"},
                "area": {"county": county, "township": town, "village": village}})  # fmt: skip
            upsert_camera(session, cam, origin="import", cipher=cipher)

    def who(role: str, **area: str) -> Principal:
        return Principal("u", role, Area(**area))  # type: ignore[arg-type]

    with sessions() as session:
        assert feed_cameras(session, who("admin", county="县")) is None
        assert feed_cameras(session, who("operator")) is None  # no area: the whole county
        assert feed_cameras(session, who("operator", county="县", township="镇A")) == {"c1", "c2"}
        village = who("operator", county="县", township="镇A", village="村1")
        assert feed_cameras(session, village) == {"c1"}
        county = who("viewer", county="县")
        assert feed_cameras(session, county) == {"c1", "c2", "c3", "c4"}
        # the same answer as the per-camera check of the API
        for p in (village, county):
            assert feed_cameras(session, p) == {
                cid for cid, (c, t, v) in places.items()
                if sees_area(p, Area(county=c, township=t, village=v))
            }  # fmt: skip
