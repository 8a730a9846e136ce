"""The state-change log a console's feed reads instead of every camera every second: the
embedded status board's (the workers' stream in Redis: tests/integration/)."""

from __future__ import annotations

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
