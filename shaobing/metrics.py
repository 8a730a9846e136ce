"""Prometheus metrics of every role (``/metrics``).

Two kinds:

* instruments updated where the work happens (``core/metrics.py``, imported by ingest,
  analytics and alerts): decode and inference time, alert latency, delivery results,
  rejected stale events — module-level objects on the default registry;
* values read when Prometheus scrapes (:class:`HubCollector`): per-camera input and
  analysed fps, frame counters (decoded, analysed, gated, dropped), gated share, queue
  depths, pending outbox rows, lease holders — nothing to keep in step, and a camera
  that left a worker leaves its series.

The API role serves ``/metrics`` on its own app (``api.metrics_public``); the other
roles take ``--metrics-port`` (:func:`serve`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from core.metrics import (  # noqa: F401 - the instruments, re-exported for the roles
    ALERT_LATENCY,
    ALERTS_STORED,
    DECODE_SECONDS,
    DELIVERIES,
    INFERENCE_BATCH,
    INFERENCE_SECONDS,
    STALE_EVENTS,
    observe_latency,
)

log = logging.getLogger(__name__)

class HubCollector(Collector):
    """Values read at scrape time from a role's parts; every source is optional."""

    def __init__(
        self,
        *,
        role: str,
        statuses: Callable[[], Iterable[Any]] | None = None,
        queues: Callable[[], dict[str, int]] | None = None,
        outbox: Callable[[], dict[str, int]] | None = None,
        leases: Callable[[], dict[str, str]] | None = None,
        cache_s: float = 2.0,
    ) -> None:
        self.role = role
        self.statuses = statuses
        self.queues = queues
        self.outbox = outbox
        self.leases = leases
        self.cache_s = cache_s
        self._outbox_cache: tuple[float, dict[str, int]] = (float("-inf"), {})
        self._lock = threading.Lock()

    def describe(self) -> list[Any]:
        return []  # values come and go with cameras: not checked at registration

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("shaobing_role_up", "1 for each running role", labels=["role"])
        up.add_metric([self.role], 1)
        yield up
        if self.statuses is not None:
            yield from self._cameras()
        if self.queues is not None:
            depth = GaugeMetricFamily("shaobing_queue_depth", "Items waiting", labels=["queue"])
            for name, value in self._safe(self.queues, {}).items():
                depth.add_metric([name], value)
            yield depth
        if self.outbox is not None:
            rows = GaugeMetricFamily(
                "shaobing_outbox_rows", "Outbox rows by state (pending, dead)", labels=["state"]
            )
            for state, count in self._outbox().items():
                rows.add_metric([state], count)
            yield rows
        if self.leases is not None:
            held = GaugeMetricFamily(
                "shaobing_camera_lease_holder",
                "1 for the worker holding a camera's lease",
                labels=["camera", "worker"],
            )
            for camera, worker in sorted(self._safe(self.leases, {}).items()):
                held.add_metric([camera, worker], 1)
            yield held

    def _cameras(self) -> Iterator[Any]:
        assert self.statuses is not None
        statuses = list(self._safe(self.statuses, []))
        labels = ["camera"]
        fam = {
            "input": GaugeMetricFamily(
                "shaobing_camera_input_fps", "Frames decoded per second", labels=labels
            ),
            "analysed": GaugeMetricFamily(
                "shaobing_camera_analysed_fps", "Frames analysed per second", labels=labels
            ),
            "gated": GaugeMetricFamily(
                "shaobing_camera_gated_share",
                "Share of analysed frames not sent to the detector (no motion)",
                labels=labels,
            ),
            "online": GaugeMetricFamily(
                "shaobing_camera_online", "1 while the camera delivers frames", labels=labels
            ),
        }
        counters = {
            name: CounterMetricFamily(f"shaobing_camera_frames_{name}", help_, labels=labels)
            for name, help_ in (
                ("decoded", "Frames decoded"),
                ("analysed", "Frames analysed (detected or gated)"),
                ("gated", "Frames analysed without detection (no motion)"),
                ("dropped", "Sampled frames dropped because analysis was behind"),
            )
        }
        for st in statuses:
            cam = [st.camera_id]
            fam["input"].add_metric(cam, st.input_fps)
            fam["analysed"].add_metric(cam, st.analysed_fps)
            share = st.frames_gated / st.frames_analysed if st.frames_analysed else 0.0
            fam["gated"].add_metric(cam, share)
            fam["online"].add_metric(cam, 1 if st.state == "online" else 0)
            counters["decoded"].add_metric(cam, st.frames_decoded)
            counters["analysed"].add_metric(cam, st.frames_analysed)
            counters["gated"].add_metric(cam, st.frames_gated)
            counters["dropped"].add_metric(cam, st.frames_dropped)
        yield from fam.values()
        yield from counters.values()

    def _outbox(self) -> dict[str, int]:
        assert self.outbox is not None
        with self._lock:
            at, value = self._outbox_cache
            if time.monotonic() - at < self.cache_s:
                return value
            value = self._safe(self.outbox, value)
            self._outbox_cache = (time.monotonic(), value)
            return value

    @staticmethod
    def _safe(fn: Callable[[], Any], default: Any) -> Any:
        try:
            return fn()
        except Exception:  # noqa: BLE001 - a scrape must not fail over one source
            log.debug("metrics source failed", exc_info=True)
            return default


class _Merged(Collector):
    """The collectors of every role in this process, exposed as one: ``run --workers``
    runs the alerts, dispatcher and API roles in one process, and a metric family may
    appear only once in an exposition (samples of the same series: the first wins)."""

    def __init__(self) -> None:
        self.sources: list[Collector] = []
        self.lock = threading.Lock()

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        with self.lock:
            sources = list(self.sources)
        families: dict[str, Any] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for source in sources:
            for family in source.collect():
                samples = family.samples
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = family
                    family.samples = []
                for sample in samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key not in seen:
                        seen.add(key)
                        merged.samples.append(sample)
        yield from families.values()


_MERGED: dict[int, _Merged] = {}


def register(collector: Collector, registry: CollectorRegistry = REGISTRY) -> Callable[[], None]:
    """Add ``collector`` to this process's scrape-time values; returns the function that
    removes it."""
    merged = _MERGED.get(id(registry))
    if merged is None:
        merged = _MERGED[id(registry)] = _Merged()
        registry.register(merged)
    with merged.lock:
        merged.sources.append(collector)

    def unregister() -> None:
        with merged.lock:
            if collector in merged.sources:
                merged.sources.remove(collector)

    return unregister


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The text exposition of ``registry`` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(port: int, host: str = "127.0.0.1") -> None:
    """``/metrics`` on ``host:port`` for a role without the API (its own thread)."""
    start_http_server(port, addr=host)
    log.info("metrics on http://%s:%d/metrics", host, port)
