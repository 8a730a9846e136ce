"""End to end, the alert's closed loop with the real hub on a real RTSP camera:
routed to the township department's receiver, escalated to the county when nobody
acknowledges, moved to 办结 by a signed feedback callback, every step in its history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign, verify
from tests.hubproc import HubProcess
from tests.peers.procs import RtspServer
from tests.peers.receiver import Receiver

pytestmark = pytest.mark.slow

SECRET = "dispatch-secret-0123"
FEEDBACK_SECRET = "feedback-secret-0123456789"
COUNTY = {"county": "示例县"}
TOWNSHIP = {"county": "示例县", "township": "城关镇"}
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def closure_config(models_dir: Path, camera_url: str, township: str, county: str) -> dict[str, Any]:
    return {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 2},
        "alerts": {"cooldown_s": 600},
        "escalation": {"check_interval_s": 0.5},
        "dispatch": [
            {"name": "township-pcs", "url": f"{township}/in", "secret": SECRET, "scope": "routed"},
            {"name": "county-centre", "url": f"{county}/in", "secret": SECRET, "scope": "routed"},
        ],
        "areas": [{**COUNTY, "code": "510123"}, {**TOWNSHIP, "code": "510123100"}],
        "departments": [
            {"id": "cg-pcs", "name": "城关派出所", "kind": "police", "level": "township",
             "areas": [TOWNSHIP], "targets": ["township-pcs"]},
            {"id": "county-centre", "name": "县综治中心", "kind": "centre", "level": "county",
             "areas": [COUNTY], "targets": ["county-centre"]},
        ],
        "routing": [{"name": "persons-to-township", "types": ["loitering"], "area": TOWNSHIP,
                     "departments": ["cg-pcs"], "ack_deadline_s": 4}],
        "feedback": [{"name": "dispatch-platform", "secret": FEEDBACK_SECRET}],
        "cameras": [{
            "id": "cg-0001", "name": "城关镇人民路口", "programme": "xueliang",
            "area": {**TOWNSHIP, "village": "人民村"}, "source": {"url": camera_url},
            "detect_fps": 5, "zones": [{"name": "square", "points": WHOLE}],
            "rules": [{"name": "square-loitering", "type": "loitering", "zone": "square",
                       "min_duration_s": 3}],
        }],
    }  # fmt: skip


def messages(rx: Receiver, alert_id: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    out = []
    for headers, body, _ in rx.requests:
        assert verify(body, SECRET, headers[SIGNATURE_HEADER])
        data = json.loads(body)
        if data["alert"]["id"] == alert_id:
            out.append((headers, data))
    return out


def feedback(
    hub: HubProcess, body: dict[str, Any], secret: str = FEEDBACK_SECRET
) -> httpx.Response:
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "X-Shaobing-Source": "dispatch-platform",
               SIGNATURE_HEADER: sign(raw, secret)}  # fmt: skip
    return httpx.post(f"{hub.base}/api/feedback", content=raw, headers=headers, timeout=5)


def test_routed_escalated_fed_back_closed(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer
) -> None:
    township, county = Receiver().start(), Receiver().start()
    hub = HubProcess(tmp_path, closure_config(models_dir, rtsp_server.url("crosswalk"),
                                              township.url, county.url))  # fmt: skip
    hub.start()
    try:
        # 1. Routed: the township police station's receiver gets the new alert.
        first = township.wait_for(1, timeout=90)[0]
        created = json.loads(first[1])
        alert_id = created["alert"]["id"]
        assert created["event"] == "alert.created" and created["sequence"] == 1
        assert first[0][IDEMPOTENCY_HEADER] == f"{alert_id}:alert.created:1"
        assert created["alert"]["handling"]["departments"] == ["cg-pcs"]
        assert created["alert"]["handling"]["tier"] == "township"

        # 2. Nobody acknowledges within 4 s: copied to the county, severity raised.
        def escalated() -> Any:
            got = messages(county, alert_id)
            return got and got[0]

        headers, up = hub.wait("escalation to the county", escalated, timeout=30)
        assert up["event"] == "alert.escalated"
        assert headers[IDEMPOTENCY_HEADER] == f"{alert_id}:alert.escalated:{up['sequence']}"
        assert up["alert"]["handling"]["tier"] == "county"
        assert up["alert"]["severity"] == "medium"  # raised from the rule's low
        assert up["change"]["departments"] == ["county-centre"]
        hub.wait("the township re-notified",
                 lambda: any(d["event"] == "alert.escalated"
                             for _, d in messages(township, alert_id)), timeout=10)  # fmt: skip

        # 3. Signed feedback: 办结 moves it to resolved, once.
        body = {"message_id": "wf-1001", "alert_id": alert_id, "status": "办结",
                "note": "民警到场，系路人等车", "actor": "张警官"}  # fmt: skip
        resp = feedback(hub, body)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"alert_id": alert_id, "action": "resolve", "status": "resolved",
                               "duplicate": False}  # fmt: skip
        again = feedback(hub, body)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert (
            feedback(hub, {**body, "message_id": "wf-1002"}, secret="wrong" * 4).status_code == 401
        )
        assert (
            feedback(hub, {**body, "message_id": "wf-1003", "alert_id": "nope"}).status_code == 404
        )
        wrong = feedback(hub, {**body, "message_id": "wf-1004", "status": "受理"})
        assert wrong.status_code == 409 and "resolved" in wrong.json()["detail"]

        # 4. The history shows each step; the receivers got the update.
        detail = hub.get(f"/api/alerts/{alert_id}")
        assert detail["status"] == "resolved"
        steps = [(h["action"], h["actor"]) for h in detail["history"]]
        assert steps[0] == ("created", "system")
        assert ("escalated", "system") in steps
        assert steps[-1] == ("resolve", "dispatch-platform:张警官")
        assert detail["history"][-1]["note"] == "民警到场，系路人等车"
        assert detail["allowed_actions"] == ["reopen"]
        hub.wait("the update delivered",
                 lambda: any(d["event"] == "alert.updated" and d["alert"]["status"] == "resolved"
                             for _, d in messages(county, alert_id)), timeout=15)  # fmt: skip
        keys = [h[IDEMPOTENCY_HEADER] for h, _ in messages(county, alert_id)]
        assert len(keys) == len(set(keys))  # every message its own key
        health = hub.get("/healthz")
        assert health["status"] == "ok" and all(health["threads"].values())
    finally:
        hub.stop()
        township.stop()
        county.stop()
    # SIGTERM stops the hub cleanly: exit status 0, the stop logged.
    assert hub.proc is not None and hub.proc.returncode == 0, hub.log()[-3000:]
    assert "hub stopped" in hub.log()
