"""Channel changes → the camera registry (SQL) and the live camera status board.

Runs on the SIP server's sync thread. A channel the operator configured by hand
(origin ``config``/``import``/``api``) is never overwritten; an imported channel
keeps the ``enabled`` flag the operator gave it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import MutableMapping

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.producer import CameraInfo
from camera_registry.status import StatusBoard
from camera_registry.store import (
    CameraRecord,
    clear_analytics_override,
    clear_patrol_sightings,
    upsert_camera,
)
from core.secrets import SecretCipher
from gb28181.channels import camera_for, camera_id
from gb28181.config import SipConfig
from gb28181.registry import VIDEO_TYPES, Changes

log = logging.getLogger(__name__)

ORIGIN = "gb28181"
GB_PREFIX = "GB/T 28181"


class CameraSync:
    def __init__(self, cfg: SipConfig, sessions: sessionmaker[Session], cipher: SecretCipher,
                 status: StatusBoard | None = None,
                 alert_cameras: MutableMapping[str, CameraInfo] | None = None) -> None:  # fmt: skip
        """``alert_cameras``: the alert producer's camera names and areas, so an alert of
        an imported channel (its offline alert) carries its name and area."""
        self.cfg = cfg
        self.sessions = sessions
        self.cipher = cipher
        self.status = status
        self.alert_cameras = alert_cameras

    def apply(self, changes: Changes) -> None:
        with self.sessions.begin() as session:
            # One query per 500 channels loads the known ones into the session's identity
            # map, so upsert_camera's get() costs nothing (a 20,000-channel catalog).
            ids = [camera_id(i.id) for _, i in changes.upsert if i.type_code in VIDEO_TYPES]
            known: dict[str, CameraRecord] = {}
            for start in range(0, len(ids), 500):
                known.update((r.id, r) for r in session.execute(select(CameraRecord).where(
                    CameraRecord.id.in_(ids[start : start + 500]))).scalars())  # fmt: skip
            with session.no_autoflush:  # one flush at the end, not one per channel
                for device_id, item in changes.upsert:
                    if item.type_code not in VIDEO_TYPES:
                        continue  # civil-code, business-group, organisation nodes
                    record = known.get(camera_id(item.id))
                    if record is not None and record.origin != ORIGIN:
                        continue
                    enabled = record.enabled if record is not None else self.cfg.channels_enabled
                    cam = camera_for(device_id, item, names=self.cfg.area_names,
                                     enabled=enabled, programme=self.cfg.programme)  # fmt: skip
                    upsert_camera(session, cam, origin=ORIGIN, cipher=self.cipher)
                    if self.alert_cameras is not None:
                        self.alert_cameras[cam.id] = CameraInfo(cam.name, cam.area, cam.gb28181_id)
            for channel_id in changes.removed:
                record = session.get(CameraRecord, camera_id(channel_id))
                if record is not None and record.origin == ORIGIN:
                    session.delete(record)
                    clear_analytics_override(session, record.id)
                    clear_patrol_sightings(session, record.id)
        if changes.upsert or changes.removed:
            log.info("GB/T 28181: %d channel(s) in the camera registry, %d removed",
                     sum(i.type_code in VIDEO_TYPES for _, i in changes.upsert),
                     len(changes.removed))  # fmt: skip
        self._status(changes)

    def _status(self, changes: Changes) -> None:
        if self.status is None:
            return
        device_down = bool(changes.went_offline)
        for channel_id, online in changes.online.items():
            if channel_id[10:13] not in VIDEO_TYPES:
                continue
            cid = camera_id(channel_id)
            current = self.status.get(cid)
            ours = (current.last_error or "").startswith(GB_PREFIX)
            if online and current.state == "offline" and ours:
                self.status.update(cid, state="online", last_error=None)
            elif not online and current.state != "offline":
                why = "its device is offline" if device_down else "the device reports it offline"
                self.status.update(cid, state="offline", last_error=f"{GB_PREFIX}: {why}",
                                   last_error_at=time.time())


def set_channel_enabled(session: Session, camera_id_: str, enabled: bool) -> CameraRecord | None:
    """Enable (analyse) or disable an imported channel's camera: its row and its stored
    config, ``updated_at`` moved so the worker following the registry (embedded:
    shaobing/follow.py; distributed: the lease planner) starts or stops it. None: no such
    camera of this origin (a camera configured by hand is enabled in its own config)."""
    record = session.get(CameraRecord, camera_id_)
    if record is None or record.origin != ORIGIN:
        return None
    data = record.raw_config()
    data["enabled"] = enabled
    record.config_json = json.dumps(data, ensure_ascii=False)
    record.enabled = enabled
    record.updated_at = time.time()
    return record
