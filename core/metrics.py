"""Prometheus instruments updated where the work happens (ingest, analytics, alerts):
decode and inference time, alert latency, delivery results, stored alerts, rejected
stale events. Module-level objects on the default registry, at the ground floor so that
every layer can count without importing the composition (``shaobing/``). The values read
at scrape time (per camera, queues, outbox) are collected by ``shaobing.metrics``.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

_FAST = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0)
_LATENCY = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)

DECODE_SECONDS = Histogram(
    "shaobing_decode_seconds", "Time to decode one video packet (all cameras)", buckets=_FAST
)
INFERENCE_SECONDS = Histogram(
    "shaobing_inference_seconds",
    "Time of one detector call, per frame in it (batched calls divided by their size)",
    buckets=_FAST,
)
INFERENCE_BATCH = Histogram(
    "shaobing_inference_batch_frames", "Frames per detector call", buckets=(1, 2, 4, 8, 16, 32)
)
ALERT_LATENCY = Histogram(
    "shaobing_alert_latency_seconds",
    "From the frame on which a rule fired to the alert stored (stage=stored) or "
    "delivered to a target (stage=delivered)",
    ["stage"],
    buckets=_LATENCY,
)
DELIVERIES = Counter(
    "shaobing_deliveries_total", "Delivery attempts by target and outcome", ["target", "outcome"]
)
ALERTS_STORED = Counter("shaobing_alerts_stored_total", "Alerts stored by the alert service")
STALE_EVENTS = Counter(
    "shaobing_stale_events_total",
    "Events rejected by the alert consumer: written by a worker after its camera lease "
    "passed to another (fencing token older than the camera's current one)",
)


def observe_latency(stage: str, since_epoch: float | None, now: float | None = None) -> None:
    """Record ``now - since_epoch`` (wall clock) unless it is not a live time."""
    if since_epoch is None:
        return
    elapsed = (time.time() if now is None else now) - since_epoch
    if 0 <= elapsed < 86_400:  # a replayed clip's times are stream seconds, not epochs
        ALERT_LATENCY.labels(stage).observe(elapsed)
