"""The per-frame path made cheaper (issue 26, item 4) gives the same answers as before:
each cheaper function against the straightforward one it replaced, on real frames or
many random scenes. (Their costs are measured in bench/bench_stages.py, not here.)"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from analytics.vqd import _NOISE_KERNEL, measure, noise_sigma
from camera_registry.config import IngestConfig, SourceConfig
from camera_registry.status import StatusBoard
from ingest.reader import DecodeStats, SampledFrame, StreamReader, iter_sampled_frames


def _frames(clip: Path, n: int) -> list[np.ndarray]:
    with av.open(str(clip)) as c:
        return [f.to_ndarray(width=416, height=234, format="bgr24")
                for _, f in zip(range(n), c.decode(video=0), strict=False)]  # fmt: skip


def test_noise_and_colour_measures_unchanged(videos_dir: Path) -> None:
    for img in _frames(videos_dir / "street_parked_cars.mp4", 30)[::3]:
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        before = float(
            np.abs(cv2.filter2D(grey, -1, _NOISE_KERNEL))[1:-1, 1:-1].mean()
            * np.sqrt(np.pi / 2)
            / 6
        )
        assert abs(noise_sigma(img) - before) <= 1e-5 * before
        small = cv2.resize(img, (160, 90), interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB).reshape(-1, 3).mean(axis=0)
        cast = float(np.hypot(lab[1] - 128.0, lab[2] - 128.0))
        blur = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        assert abs(measure(small, blur, 0.0, img).cast - cast) < 1e-9


def test_sampled_frames_convert_as_to_ndarray_did(videos_dir: Path) -> None:
    clip = videos_dir / "crosswalk_people.mp4"
    with av.open(str(clip)) as c:
        sampled = list(
            iter_sampled_frames(
                c,
                camera_id="c",
                detect_fps=5.0,
                box=(416, 416),
                mode="replay",
                max_decode_errors=10,
            )  # fmt: skip
        )
    assert len(sampled) > 100
    for s in sampled[::10]:
        assert s.image.shape == (234, 416, 3)
        # the frame's own scaler, as before (a new swscale context per call)
        assert np.array_equal(s.image, s.source.to_ndarray(width=416, height=234, format="bgr24"))
        assert np.array_equal(s.source_bgr(), s.source.to_ndarray(format="bgr24"))


def _signatures_before(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """analytics.appearance.signatures as it was: the whole frame converted and binned in
    int32, the smoothing by np.roll and put_along_axis."""
    from analytics.appearance import BINS, MIN_PX, SIZE, TRIM_X, TRIM_Y

    out = np.full((len(xyxy), SIZE), np.nan, dtype=np.float32)
    if not len(xyxy):
        return out
    h_img, w_img = image.shape[:2]
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hb = np.minimum(hsv[..., 0].astype(np.int32) * BINS[0] // 180, BINS[0] - 1)
    sb = hsv[..., 1].astype(np.int32) * BINS[1] // 256
    vb = hsv[..., 2].astype(np.int32) * BINS[2] // 256
    bins = (hb * BINS[1] + sb) * BINS[2] + vb
    rows = []
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(xyxy, dtype=np.float64).tolist()):
        dx, dy = (x2 - x1) * TRIM_X, (y2 - y1) * TRIM_Y
        a, b = max(0, int(round(x1 + dx))), min(w_img, int(round(x2 - dx)))
        c, d = max(0, int(round(y1 + dy))), min(h_img, int(round(y2 - dy)))
        if b - a < MIN_PX or d - c < MIN_PX:
            continue
        out[i] = np.bincount(bins[c:d, a:b].ravel(), minlength=SIZE) / float((b - a) * (d - c))
        rows.append(i)
    if rows:
        hist = out[rows].reshape(-1, *BINS)
        for axis in (1, 2, 3):
            prev, nxt = np.roll(hist, 1, axis=axis), np.roll(hist, -1, axis=axis)
            if axis > 1:
                first, last = np.take(hist, [0], axis=axis), np.take(hist, [-1], axis=axis)
                np.put_along_axis(prev, np.zeros_like(first, dtype=np.intp), first, axis=axis)
                end = np.full_like(last, hist.shape[axis] - 1, dtype=np.intp)
                np.put_along_axis(nxt, end, last, axis=axis)
            hist = 0.5 * hist + 0.25 * prev + 0.25 * nxt
        out[rows] = hist.reshape(len(rows), SIZE)
    return out


def test_histogram_bins_are_the_tables_bins_level_by_level() -> None:
    """cv2.calcHist's uniform bins put each 8-bit hue (0-179), saturation and value level
    in the bin of the tables (the channels are binned independently: per level suffices)."""
    from analytics.appearance import _LUT_H, _LUT_S, _LUT_V, _RANGES, BINS, SIZE

    for channel, table, levels in ((0, _LUT_H, 180), (1, _LUT_S, 256), (2, _LUT_V, 256)):
        for level in range(levels):
            px = np.zeros((1, 1, 3), np.uint8)
            px[0, 0, channel] = level
            hist = cv2.calcHist([px], [0, 1, 2], None, list(BINS), _RANGES).reshape(SIZE)
            assert np.flatnonzero(hist).tolist() == [int(table[level])], (channel, level)


def test_colour_signatures_unchanged(videos_dir: Path) -> None:
    """Only the boxes' pixels converted, bins by table: the same signatures, bit for bit,
    for boxes of every size, partly outside the frame or too small (NaN rows)."""
    from analytics.appearance import signatures

    rng = np.random.default_rng(7)
    seen_small = seen_nan = 0
    for clip in ("crosswalk_people.mp4", "plaza_topdown.mp4", "street_parked_cars.mp4"):
        for img in _frames(videos_dir / clip, 60)[::6]:
            k = int(rng.integers(1, 25))
            x1, y1 = rng.uniform(-30, 410, k), rng.uniform(-30, 230, k)
            w, h = rng.uniform(2, 160, k), rng.uniform(2, 200, k)
            boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)
            after, before = signatures(img, boxes), _signatures_before(img, boxes)
            assert np.array_equal(after, before, equal_nan=True)
            seen_nan += int(np.isnan(after[:, 0]).sum())
            seen_small += int((~np.isnan(after[:, 0])).sum())
    assert seen_nan > 0 and seen_small > 50  # both kinds of rows were compared


def _sampled(clip: Path, skip: bool) -> tuple[list[tuple[float, bytes]], DecodeStats]:
    stats = DecodeStats()
    with av.open(str(clip)) as c:
        frames = [(s.pts, s.image.tobytes())
                  for s in iter_sampled_frames(c, camera_id="c", detect_fps=5.0, box=(416, 416),
                                               mode="replay", max_decode_errors=1000, stats=stats,
                                               skip_unsampled=skip)]  # fmt: skip
    return frames, stats


def test_skipping_unsampled_non_reference_frames_samples_the_same_frames(
    videos_dir: Path,
) -> None:
    """Non-reference frames that will not be sampled are left undecoded: the same frames
    come out, pixel for pixel, and every frame is counted (decoded or skipped), so a
    skipped frame is never reported as lost data."""
    skipped = {}
    for clip in ("crosswalk_people.mp4", "plaza_topdown.mp4", "highway_receding_720p.mp4",
                 "highway_divided.mp4", "street_parked_cars.mp4"):  # fmt: skip
        every, all_stats = _sampled(videos_dir / clip, skip=False)
        fewer, stats = _sampled(videos_dir / clip, skip=True)
        assert fewer == every, clip
        assert stats.packets == all_stats.packets
        assert stats.frames + stats.skipped == all_stats.frames, clip
        assert stats.undecodable == all_stats.undecodable, clip
        skipped[clip] = stats.skipped
    # B-frames in the first three; none in the highway's and the street's (every frame a
    # reference: nothing to skip), whose truncated tail is still reported as lost
    assert skipped["crosswalk_people.mp4"] > 200 and skipped["plaza_topdown.mp4"] > 80
    assert skipped["highway_receding_720p.mp4"] > 30
    assert skipped["highway_divided.mp4"] == skipped["street_parked_cars.mp4"] == 0
    assert _sampled(videos_dir / "street_parked_cars.mp4", skip=True)[1].undecodable == 20


def test_the_reader_counts_skipped_frames_as_read(videos_dir: Path) -> None:
    """A camera's frames_decoded counts every frame of the stream, skipped or not."""
    status = StatusBoard()
    clip = str(videos_dir / "crosswalk_people.mp4")
    got: list[SampledFrame] = []
    reader = StreamReader("c", lambda: clip, SourceConfig(url=clip, loop=False, realtime=False),
                          IngestConfig(), detect_fps=5.0, box=(416, 416), on_frame=got.append,
                          status=status)  # fmt: skip
    reader.start()
    reader.join(60)
    st = status.get("c")
    assert st.state == "finished" and len(got) == 143
    assert st.frames_decoded == 686  # every frame of the clip, 276 of them not decoded
    assert st.decode_errors == 0 and st.last_error is None
