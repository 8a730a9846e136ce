"""The HLS playlist of a recorded range (recording/hls.py): offsets on the player's
timeline, discontinuities at gaps and size changes, where the player starts."""

from __future__ import annotations

import pytest

from recording.hls import PlaylistSegment, plan, playlist, position

T0 = 1_790_000_000.0


def seg(i: str, start: float, end: float, width: int = 1920) -> PlaylistSegment:
    return PlaylistSegment(i, T0 + start, T0 + end, "h264", width, 1080)


SEGS = [seg("a", 0, 10), seg("b", 10.04, 20), seg("c", 50, 60), seg("d", 60, 70, width=1280)]


def test_offsets_continue_and_gaps_and_new_sizes_are_discontinuities() -> None:
    entries = plan(list(reversed(SEGS)))  # any order in
    assert [e.segment.id for e in entries] == ["a", "b", "c", "d"]
    assert [round(e.offset, 2) for e in entries] == [0, 10, 19.96, 29.96]
    assert [e.discontinuity for e in entries] == [False, False, True, True]
    assert [e.new_map for e in entries] == [True, False, False, True]


def test_the_player_starts_at_the_asked_time_and_a_gap_jumps_to_the_next_segment() -> None:
    entries = plan(SEGS)
    assert position(entries, T0 + 5) == pytest.approx(5)
    assert position(entries, T0 + 12) == pytest.approx(11.96)
    assert position(entries, T0 + 30) == pytest.approx(19.96)  # in the gap: c's start
    assert position(entries, T0 - 100) == 0


def test_the_playlist_text() -> None:
    text = playlist(plan(SEGS), T0 + 12, init_url=lambda s: f"i/{s.id}",
                    media_url=lambda e: f"m/{e.segment.id}?o={e.offset:.3f}")  # fmt: skip
    lines = text.splitlines()
    assert lines[:6] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:10",
                         "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS",
                         "#EXT-X-START:TIME-OFFSET=11.960,PRECISE=YES"]  # fmt: skip
    assert lines.count("#EXT-X-DISCONTINUITY") == 2
    assert [x for x in lines if x.startswith("#EXT-X-MAP")] == ['#EXT-X-MAP:URI="i/a"',
                                                                '#EXT-X-MAP:URI="i/d"']  # fmt: skip
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-09-21T14:13:20.000Z" in lines
    assert "m/c?o=19.960" in lines and lines[-1] == "#EXT-X-ENDLIST"
    with pytest.raises(ValueError):
        playlist([], T0, init_url=str, media_url=str)
