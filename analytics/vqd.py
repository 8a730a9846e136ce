"""Video quality diagnosis (视频质量诊断): what is wrong with the picture itself.

Measured on the motion gate's small image (160 px wide), so it costs a fraction of a
millisecond per frame and runs on every camera, rules or not. Each measure is judged
against fixed limits where the physics is clear (black, over-exposed, frozen) and
against the camera's own learned normal where scenes differ (sharpness, noise, uniform
area, the view itself), so a dark night street, rain or an empty road is not a fault:

* ``black`` — mean grey ≤ ``black_level`` *and* almost no contrast (a night scene has
  lights and edges; a dead or covered sensor has neither);
* ``overexposed`` — most of the picture saturated;
* ``frozen`` — consecutive frames identical down to the sensor noise;
* ``blur`` — sharpness (variance of the Laplacian) under ``blur_ratio`` of the camera's
  learned sharpness;
* ``occlusion`` — a large share of the picture suddenly uniform (a hand, a bag, spray
  paint, a leaf on the lens) compared with the learned share;
* ``colour_cast`` — the average colour far from grey in daylight (a failing sensor or
  cable); not judged in the dark, where street lights are orange;
* ``scene_change`` — the picture no longer resembles the learned view (the camera was
  turned or knocked): correlation of a coarse thumbnail with the reference;
* ``noise`` — high-frequency energy several times the learned level (failing sensor,
  interference).

The learned normal follows slow changes (day to night) and is frozen while a finding
holds; after ``relearn_s`` of a changed view, the new view becomes the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

KINDS = (
    "black",
    "overexposed",
    "frozen",
    "blur",
    "occlusion",
    "colour_cast",
    "scene_change",
    "noise",
)  # fmt: skip


@dataclass(frozen=True)
class QualityMeasures:
    """One frame's measures (on the small image)."""

    luma: float  # mean grey
    contrast: float  # grey standard deviation
    saturated: float  # share of pixels ≥ 250
    change: float  # mean absolute grey difference to the previous frame
    sharpness: float  # variance of the Laplacian
    noise: float  # sensor noise sigma (grey levels) of the analysed frame
    uniform: float  # share of 8x8 blocks with a standard deviation < 2.5
    cast: float  # distance of the mean colour from grey (Lab a/b units)
    thumb: np.ndarray = field(repr=False)  # 32x18 grey thumbnail, zero mean


#: Immerkær's noise estimator: a Laplacian difference that cancels edges and gradients.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def noise_sigma(image_bgr: np.ndarray) -> float:
    """Standard deviation of the sensor noise of a frame (grey levels), after Immerkær
    (1996), on the full analysed frame: texture and edges barely count."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    # integer arithmetic (|response| ≤ 16 × 255 fits int16): exact, 5x cheaper than float32
    response = cv2.filter2D(grey, cv2.CV_16S, _NOISE_KERNEL)[1:-1, 1:-1]
    # the L1 norm sums the integers exactly in double precision: numpy's mean of |response|
    return float(cv2.norm(response, cv2.NORM_L1) / response.size * np.sqrt(np.pi / 2) / 6)


def measure(
    small: np.ndarray, grey: np.ndarray, change: float, image_bgr: np.ndarray | None = None
) -> QualityMeasures:
    """The measures of one frame: ``small`` is the gate's small image (grey, or BGR),
    ``grey`` its blurred grey; ``image_bgr`` the analysed frame (for noise, which the small
    image averages away, and for the colour when ``small`` is grey)."""
    raw = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    h, w = raw.shape
    blocks = raw[: h - h % 8, : w - w % 8].reshape(h // 8, 8, w // 8, 8).std(axis=(1, 3))
    if small.ndim == 3 or image_bgr is None:
        colour = small if small.ndim == 3 else cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    else:  # the mean colour needs no area average: a bilinear small copy (0.07 ms)
        colour = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    lab = cv2.mean(cv2.cvtColor(colour, cv2.COLOR_BGR2LAB))  # (L, a, b, 0); numpy's: 100x slower
    thumb = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
    return QualityMeasures(
        luma=float(grey.mean()),
        contrast=float(raw.std()),
        saturated=float((raw >= 250).mean()),
        change=change,
        sharpness=float(cv2.Laplacian(raw, cv2.CV_32F).var()),
        noise=noise_sigma(image_bgr if image_bgr is not None else colour),
        uniform=float((blocks < 2.5).mean()) if blocks.size else 0.0,
        cast=float(np.hypot(lab[1] - 128.0, lab[2] - 128.0)),
        thumb=thumb - thumb.mean(),
    )


#: Seconds over which the "recent" picture is averaged for scene changes.
RECENT_S = 3.0


@dataclass(frozen=True)
class QualityLimits:
    black_level: float = 16.0
    black_contrast: float = 6.0
    overexposed_share: float = 0.85
    frozen_level: float = 0.01
    blur_ratio: float = 0.3
    occlusion_share: float = 0.5
    cast_level: float = 28.0
    scene_similarity: float = 0.35
    noise_ratio: float = 3.0
    learn_s: float = 20.0  # time constant of the learned normal
    relearn_s: float = 300.0  # a changed view held this long becomes the reference


class QualityBaseline:
    """The camera's learned normal and the findings of each frame against it (no I/O)."""

    def __init__(self, limits: QualityLimits, checks: tuple[str, ...] = KINDS) -> None:
        self.limits = limits
        self.checks = checks
        self.sharpness: float | None = None
        self.noise: float | None = None
        self.uniform: float | None = None
        self.luma: float | None = None
        self.reference: np.ndarray | None = None  # the learned view (slow)
        self.recent: np.ndarray | None = None  # the last seconds (moving objects averaged out)
        self.learned_s = 0.0
        self.last_t: float | None = None
        self.changed_since: float | None = None
        self.similarity = 1.0

    def _ema(self, old: float | None, new: float, dt: float) -> float:
        if old is None:
            return new
        a = min(1.0, dt / self.limits.learn_s)
        return old + a * (new - old)

    def assess(self, m: QualityMeasures, t: float) -> dict[str, tuple[float, float]]:
        """The findings of this frame: kind → (measured value, limit)."""
        lim = self.limits
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        self.last_t = t
        found: dict[str, tuple[float, float]] = {}
        black = m.luma <= lim.black_level and m.contrast <= lim.black_contrast
        if black:
            found["black"] = (m.luma, lim.black_level)
        if m.saturated >= lim.overexposed_share:
            found["overexposed"] = (m.saturated, lim.overexposed_share)
        if m.change <= lim.frozen_level and not black:
            found["frozen"] = (m.change, lim.frozen_level)
        blank = black or "overexposed" in found
        if self.sharpness and not blank and m.sharpness < lim.blur_ratio * self.sharpness:
            found["blur"] = (m.sharpness / self.sharpness, lim.blur_ratio)
        if (
            self.uniform is not None
            and not blank
            and m.uniform - self.uniform >= lim.occlusion_share
        ):
            found["occlusion"] = (m.uniform, self.uniform + lim.occlusion_share)
        daylight = max(m.luma, self.luma or 0.0) >= 50  # in the dark, lamps tint the scene
        if daylight and m.cast >= lim.cast_level:
            found["colour_cast"] = (m.cast, lim.cast_level)
        if self.noise and not blank and m.noise > lim.noise_ratio * max(self.noise, 0.5):
            found["noise"] = (m.noise / max(self.noise, 0.5), lim.noise_ratio)
        self.similarity = self._similarity(m, dt)
        if not blank and self.similarity < lim.scene_similarity and "occlusion" not in found:
            found["scene_change"] = (self.similarity, lim.scene_similarity)
            self.changed_since = t if self.changed_since is None else self.changed_since
            if t - self.changed_since >= lim.relearn_s:  # the new view is the view now
                self.reference, self.changed_since = m.thumb, None
        else:
            self.changed_since = None
        found = {k: v for k, v in found.items() if k in self.checks}
        if not found:  # learn only from a normal picture
            self.sharpness = self._ema(self.sharpness, m.sharpness, dt)
            self.noise = self._ema(self.noise, m.noise, dt)
            self.uniform = self._ema(self.uniform, m.uniform, dt)
            self.luma = self._ema(self.luma, m.luma, dt)
            self.learned_s += dt
            if self.reference is None:
                self.reference = m.thumb
            elif self.similarity >= (1.0 + lim.scene_similarity) / 2:
                # Quick at first (the first frame may be full of people), then slow; never
                # from a view that is drifting away (a turn is sudden: it must not be learned
                # while it has not yet crossed the limit).
                tau = lim.learn_s if self.learned_s < 3 * lim.learn_s else lim.learn_s * 10
                a = min(1.0, dt / tau)
                self.reference = self.reference + a * (m.thumb - self.reference)
        return found

    def _similarity(self, m: QualityMeasures, dt: float) -> float:
        """Correlation of the last seconds' average picture with the learned view: people
        and cars passing change a frame, not the average of a few seconds."""
        a = 1.0 if self.recent is None else min(1.0, max(dt, 0.2) / RECENT_S)
        self.recent = m.thumb if self.recent is None else self.recent + a * (m.thumb - self.recent)
        if self.reference is None:
            return 1.0
        ref, cur = self.reference, self.recent
        den = float(np.linalg.norm(ref) * np.linalg.norm(cur))
        if den < 1e-3:  # one of them flat: nothing to compare
            return 1.0
        return float((ref * cur).sum() / den)
