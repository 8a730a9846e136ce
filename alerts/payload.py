"""The alert as JSON: the dispatch payload's ``alert`` object and the API's alert body
(one schema for both)."""

from __future__ import annotations

from typing import Any

from alerts.domain.model import Alert
from alerts.labels import class_zh, explain_zh
from alerts.links import EvidenceLinks


def evidence_url(base_url: str, alert_id: str, kind: str) -> str:
    if kind == "clip":
        return f"{base_url}/api/alerts/{alert_id}/clip.mp4"
    suffix = "?annotated=true" if kind == "annotated_snapshot" else ""
    return f"{base_url}/api/alerts/{alert_id}/snapshot.jpg{suffix}"


def alert_payload(
    alert: Alert, *, base_url: str = "", links: EvidenceLinks | None = None
) -> dict[str, Any]:
    """``links``: sign the evidence URLs (messages to dispatch targets, which have no
    login); without it the URLs are plain API paths (for logged-in API users)."""
    evidence: dict[str, dict[str, Any]] = {}
    for kind in ("snapshot", "annotated_snapshot"):
        ref = alert.evidence.get(kind)
        url = links.url(alert.id, kind) if links else evidence_url(base_url, alert.id, kind)
        evidence[kind] = {
            "url": url if ref else None,
            "sha256": ref.sha256 if ref else None,
        }
    clip = alert.evidence.get("clip")
    # The clip arrives seconds after the alert (it needs the seconds after the event);
    # its URL needs a login (signed links cover the snapshots).
    evidence["clip"] = {
        "url": evidence_url(links.base_url if links else base_url, alert.id, "clip")
        if clip
        else None,
        "sha256": clip.sha256 if clip else None,
        "start": clip.start if clip else None,
        "end": clip.end if clip else None,
    }
    return {
        "id": alert.id,
        "type": alert.type,
        "rule": alert.rule,
        "severity": alert.severity,
        "status": alert.status,
        "camera": {"id": alert.camera_id, "name": alert.camera_name,
                   "gb28181_id": alert.camera_gb28181_id},  # fmt: skip
        "area": alert.area.model_dump(),
        "created_at": alert.created_at,
        "started_at": alert.started_at,
        "updated_at": alert.updated_at,
        "object_class": alert.object_class,
        "object_label": class_zh(alert.object_class),
        "track_ids": list(alert.track_ids),
        "zone": alert.zone,
        "trace": {
            "measured": alert.measured,
            "threshold": alert.threshold,
            "unit": alert.unit,
            "explanation": alert.explanation,
            "explanation_zh": explain_zh(alert.type, alert.object_class, alert.track_ids,
                                         alert.zone, alert.measured, alert.threshold, alert.unit,
                                         alert.details),  # fmt: skip
            "details": alert.details,
        },
        "confidence": round(alert.confidence, 3),
        "box": alert.box,
        "evidence": evidence,
        "incident": {
            "count": alert.count,
            "first_at": alert.created_at,
            "last_at": alert.last_at,
            "last_alert_id": alert.last_alert_id,
            "suppressed": alert.suppressed,
        },
        "handling": {
            "department_id": alert.department_id,
            "assignee": alert.assignee,
            "departments": sorted(alert.departments),
            "tier": alert.tier,
            "escalation_level": alert.escalation_level,
            "acknowledged_at": alert.acknowledged_at,
            "resolved_at": alert.resolved_at,
            "due_at": alert.due_at(),
            "false_alarm_reason": alert.false_alarm_reason,
        },
    }
