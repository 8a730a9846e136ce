"""Skipping non-reference frames that will not be sampled (ingest.reader.SkipPlanner):
the sampler must take the same frames as with every frame decoded, and every frame of the
stream must be counted, decoded or skipped. A small model of a decoder stands in for
FFmpeg: frames come out in timestamp order after a reorder delay, and a non-reference
frame sent while skipping never comes out."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ingest.reader import Sampler, SkipPlanner


@dataclass
class Packet:
    pts: float
    ref: bool  # a frame others refer to (I, P, reference B)


def gop_stream(fps: float, seconds: float, pattern: str = "PBB") -> list[Packet]:
    """Packets in decode order: an I frame, then groups of a P frame followed by the
    B frames displayed before it (the usual IPBB... layout)."""
    n = int(fps * seconds)
    out = [Packet(0.0, True)]
    i = 1
    while i < n:
        group = min(len(pattern), n - i)
        anchor = i + group - 1  # the P frame is displayed after its B frames
        out.append(Packet(anchor / fps, True))
        out.extend(Packet(k / fps, False) for k in range(i, anchor))
        i += group
    return out


def play(packets: list[Packet], fps_sample: float, skip: bool, delay: int = 2) -> tuple:
    """Sampled timestamps, frames out, frames counted as skipped."""
    sampler = Sampler(fps_sample)
    planner = SkipPlanner(sampler)
    buffer: list[float] = []  # decoded, waiting to come out (reorder delay)
    sampled: list[float] = []
    out = skipped = 0

    def emit(pts: float) -> None:
        nonlocal out, skipped
        out += 1
        skipped += planner.out(pts)
        if sampler.take(pts):
            sampled.append(pts)

    for p in packets:
        s = skip and planner.skippable(p.pts)
        planner.sent(p.pts, s)
        if not (s and not p.ref):
            buffer.append(p.pts)
            buffer.sort()
        while len(buffer) > delay:
            emit(buffer.pop(0))
    for pts in buffer:  # flush
        emit(pts)
    skipped += planner.end()
    return sampled, out, skipped


def test_the_same_frames_are_sampled_and_every_frame_is_counted() -> None:
    for fps in (10.0, 23.976, 25.0, 30.0):
        for pattern in ("P", "PB", "PBB", "PBBB"):
            for sample_fps in (1.0, 2.0, 5.0, 10.0):
                packets = gop_stream(fps, 20.0, pattern)
                want, out_all, _ = play(packets, sample_fps, skip=False)
                got, out, skipped = play(packets, sample_fps, skip=True)
                assert got == want, (fps, pattern, sample_fps)
                assert out_all == len(packets)
                assert out + skipped == len(packets)
                if pattern != "P" and sample_fps * 2 < fps:
                    assert skipped > 0  # B frames between the samples were left undecoded


def test_jittered_timestamps_and_longer_reorder_delays() -> None:
    rng = random.Random(3)
    for _ in range(40):
        fps = rng.choice((12.5, 15.0, 24.0, 30.0))
        packets = gop_stream(fps, 10.0, rng.choice(("PB", "PBB", "PBBB")))
        for p in packets:
            p.pts += rng.uniform(-0.004, 0.004)  # capture jitter on the camera's clock
        delay = rng.choice((1, 2, 3, 4))
        want, _, _ = play(packets, 5.0, skip=False, delay=delay)
        got, out, skipped = play(packets, 5.0, skip=True, delay=delay)
        assert got == want
        assert out + skipped == len(packets)


def test_reference_frames_are_never_counted_as_skipped() -> None:
    # Only P frames (no B frames): whatever is sent in skip mode still comes out.
    packets = gop_stream(25.0, 10.0, "P")
    _, out, skipped = play(packets, 5.0, skip=True)
    assert (out, skipped) == (len(packets), 0)


def test_no_timestamps_nothing_skipped() -> None:
    planner = SkipPlanner(Sampler(5.0))
    assert not planner.skippable(None)  # nothing known: decode
    planner.sampler.take(0.0)
    assert planner.skippable(0.04) and not planner.skippable(None)
    assert not planner.skippable(-10.0)  # far behind: the sampler takes it (a jump back)
