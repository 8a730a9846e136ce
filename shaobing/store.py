"""What every role opens first: the database (migrated, the config's cameras and routing
rules in it), the camera-password cipher, the evidence storage and its signed links, the
router, and the cameras as the hub runs them (the stored record with the console's
zones and rules on top). One function each, used by the embedded and the distributed
compositions alike (``shaobing/bootstrap.py``)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from accounts.service import audit, ensure_initial_admin, list_audit
from alerts.adapters.sql import OutboxRecord, routing_rule_configs, sync_config_routing
from alerts.config import RoutingRuleConfig
from alerts.domain.routing import Router
from alerts.links import EvidenceLinks, load_or_create_key
from alerts.routing_setup import make_router
from analytics.config import CameraConfig
from camera_registry.status import CameraStatus
from camera_registry.store import (
    CameraRecord,
    analytics_override,
    encrypt_plain_secrets,
    invalid_config_error,
    list_cameras,
    remove_stale_config_cameras,
    set_analytics_override,
    upsert_camera,
)
from core.secrets import SecretCipher, load_or_create_cipher, make_private_dir
from core.storage import EvidenceStorage, open_evidence_storage
from linkage.store import sync_config_linkage
from shaobing.config import LoadedConfig
from shaobing.db import open_database

log = logging.getLogger(__name__)


@dataclass
class Store:
    """The database of a process and the key that decrypts its camera passwords."""

    engine: Engine
    sessions: sessionmaker[Session]
    cipher: SecretCipher

    def dispose(self) -> None:
        self.engine.dispose()

    def ensure_admin(self, password: str | None = None) -> str | None:
        """On a first start with no user: create ``admin``; its password (shown once)."""
        with self.sessions.begin() as session:
            return ensure_initial_admin(session, password)

    def load_cameras(
        self, on_invalid: Callable[[str, str], None] | None = None
    ) -> list[CameraConfig]:
        """The stored cameras as the hub runs them: the record's config with the zones and
        rules saved in the console on top. One this version cannot use (written by another
        version, or its password encrypted with another key) is skipped, logged and handed
        to ``on_invalid(camera_id, reason)``: the other cameras still start."""
        with self.sessions() as session:
            records = [(r, analytics_override(session, r.id)) for r in list_cameras(session)]
        cameras = []
        for record, override in records:
            try:
                cameras.append(self._effective(record, override))
            except ValueError as exc:  # ValidationError and SecretError are ValueErrors
                error = invalid_config_error(exc)
                log.error("camera %s: stored config cannot be used, skipped: %s", record.id,
                          error)  # fmt: skip
                if on_invalid is not None:
                    on_invalid(record.id, error)
        return cameras

    def _effective(self, record: CameraRecord, override: object | None) -> CameraConfig:
        data = record.config_data(self.cipher)
        if override is not None:  # zones and rules edited in the console
            try:
                return CameraConfig.model_validate({**data, **override.data()})  # type: ignore[attr-defined]
            except ValueError as exc:
                log.error("camera %s: the zones and rules saved by %s cannot be used, the "
                          "config's are: %s", record.id, override.updated_by,  # type: ignore[attr-defined]
                          invalid_config_error(exc))  # fmt: skip
        return CameraConfig.model_validate(data)

    def camera_index(
        self, since: float | None = None, *, enabled_only: bool = False
    ) -> list[tuple[str, bool, float]]:
        """``(id, enabled, updated_at)`` of every camera (or every enabled one), or of
        those changed at or after ``since``: what a worker needs to plan its leases (no
        config decrypted)."""
        stmt = select(CameraRecord.id, CameraRecord.enabled, CameraRecord.updated_at)
        if since is not None:
            stmt = stmt.where(CameraRecord.updated_at >= since)
        if enabled_only:
            stmt = stmt.where(CameraRecord.enabled.is_(True))
        with self.sessions() as session:
            return [(cid, bool(on), float(at or 0.0)) for cid, on, at in session.execute(stmt)]

    def load_camera(self, camera_id: str) -> CameraConfig | None:
        """One camera as the hub runs it (None: no such camera); ValueError when its
        stored config cannot be used (written by another version, another key)."""
        with self.sessions() as session:
            record = session.get(CameraRecord, camera_id)
            if record is None:
                return None
            override = analytics_override(session, camera_id)
            return self._effective(record, override)

    def save_camera_analytics(
        self, camera_id: str, analytics: dict[str, object], actor: str
    ) -> CameraConfig:
        """Save a camera's zones, rules and motion gate, validated with the camera, and
        audit it; the camera as it runs now. KeyError for an unknown camera, ValueError (a
        pydantic ValidationError) for an invalid combination."""
        with self.sessions.begin() as session:
            record = session.get(CameraRecord, camera_id)
            if record is None:
                raise KeyError(camera_id)
            cam = CameraConfig.model_validate({**record.config_data(self.cipher), **analytics})
            set_analytics_override(session, camera_id, analytics, actor)
            audit(session, actor, "camera_analytics_changed", camera_id,
                  f"{len(cam.zones)} zone(s), {len(cam.rules)} rule(s): "
                  + ", ".join(f"{r.name} ({r.type})" for r in cam.rules))  # fmt: skip
        return cam

    def outbox_counts(self) -> dict[str, int]:
        """Outbox rows pending and dead (one grouped query)."""
        with self.sessions() as session:
            rows = session.execute(
                select(OutboxRecord.state, func.count())
                .where(OutboxRecord.state.in_(("pending", "dead")))
                .group_by(OutboxRecord.state)
            ).all()
        counts = {"pending": 0, "dead": 0}
        counts.update({state: int(n) for state, n in rows})
        return counts


def open_store(loaded: LoadedConfig) -> Store:
    """The database (migrated) with the config's cameras and routing rules in it, and the
    camera-password cipher. Every role calls it; two processes doing it at once on
    PostgreSQL may collide on an insert: the loser tries again."""
    cfg = loaded.config
    for folder in (loaded.data_dir, loaded.snapshot_dir):  # owner only (0700)
        make_private_dir(folder)
    for attempt in range(5):  # several roles starting at once race on the migrations:
        try:  # PostgreSQL's DDL is transactional, the loser's rolled back; it tries again
            engine, sessions = open_database(loaded.database_url, loaded.backup_dir)
            break
        except (IntegrityError, ProgrammingError, OperationalError):
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    # Camera passwords are stored encrypted with a key kept outside the database.
    cipher = load_or_create_cipher(loaded.secret_key_path)
    for attempt in range(5):
        try:
            with sessions.begin() as session:
                for cam in cfg.cameras:
                    upsert_camera(session, cam, origin="config", cipher=cipher)
                removed = remove_stale_config_cameras(session, {c.id for c in cfg.cameras})
                encrypted = encrypt_plain_secrets(session, cipher)
                sync_config_routing(
                    session, {r.name: r.model_dump(mode="json") for r in cfg.routing}
                )
                sync_config_linkage(session, cfg.linkage.rules)  # issue 27
            break
        except (IntegrityError, OperationalError):  # another role inserted first / locked
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    if removed:
        log.info("cameras no longer in the config removed: %s", ", ".join(removed))
    if encrypted:
        log.info("camera passwords stored in plain text encrypted: %s", ", ".join(encrypted))
    return Store(engine, sessions, cipher)


def audit_config(loaded: LoadedConfig, store: Store) -> None:
    """Record in the audit log a start with a config that differs from the last one."""
    cfg = loaded.config
    digest = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:16]
    with store.sessions.begin() as session:
        last, _ = list_audit(session, limit=1, action="config_loaded")
        if last and (last[0].detail or "").startswith(digest):
            return
        audit(session, "system", "config_loaded", str(loaded.path or "(defaults)"),
              f"{digest} {len(cfg.cameras)} camera(s), {len(cfg.dispatch)} dispatch "
              f"target(s), {len(cfg.departments)} department(s), {len(cfg.routing)} routing "
              f"rule(s), {len(cfg.feedback)} feedback source(s)")  # fmt: skip


def evidence_links(loaded: LoadedConfig) -> EvidenceLinks:
    """Signed evidence links (every API node of a deployment needs the same key)."""
    api = loaded.config.api
    public_url = (api.public_url or f"http://{api.host}:{api.port}").rstrip("/")
    key = load_or_create_key(api.link_secret, loaded.data_dir / "link.key")
    return EvidenceLinks(public_url, key, api.link_ttl_s)


def evidence_storage(loaded: LoadedConfig) -> EvidenceStorage:
    """The evidence storage of a process (``storage.evidence``; see core/storage.py): the
    directory ``alerts.snapshot_dir`` (shared in distributed mode) or an S3 bucket.
    ``<data_dir>/tracks``, where older versions kept the track index's files, stays
    readable for the rows written then."""
    cfg = loaded.config.storage.evidence
    ca_file = getattr(cfg, "ca_file", None)
    return open_evidence_storage(
        cfg, loaded.snapshot_dir, legacy_roots=[loaded.data_dir / "tracks"],
        ca_file=loaded.resolve(ca_file, loaded.base_dir) if ca_file else None,
    )  # fmt: skip


def check_evidence(storage: EvidenceStorage, loaded: LoadedConfig) -> None:
    """Warn when the evidence storage is not writable or cannot serve several hosts (a
    directory under data_dir) — for the roles of the distributed mode."""
    log.info("evidence storage: %s", storage.describe())
    for problem in storage.check(shared_required=True, data_dir=loaded.data_dir):
        log.warning("%s (fine when every role runs on this one host)", problem)


def build_router(loaded: LoadedConfig, sessions: sessionmaker[Session]) -> Router:
    """The router of the config's departments and targets and the stored routing rules."""
    cfg = loaded.config
    with sessions() as session:
        stored = routing_rule_configs(session)
    rules = []
    for _, data in stored:
        try:
            rules.append(RoutingRuleConfig.model_validate(data))
        except ValueError as exc:  # written by another version: say so, route the rest
            log.error("routing rule %s is invalid, skipped: %s", data.get("name"), exc)
    return make_router(cfg.departments, cfg.dispatch, rules, cfg.escalation)


class RoutingCache:
    """The router, rebuilt from the database when older than ``ttl_s`` or after
    :meth:`reload` (rules changed through any API node reach every process that routes)."""

    def __init__(self, loaded: LoadedConfig, sessions: sessionmaker[Session], ttl_s: float = 5):
        self.loaded = loaded
        self.sessions = sessions
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._router = build_router(loaded, sessions)
        self._at = time.monotonic()

    def __call__(self) -> Router:
        with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                try:
                    self._router = build_router(self.loaded, self.sessions)
                except Exception:  # noqa: BLE001 - the database away: route with the last
                    log.warning("routing rules not re-read; using the last ones", exc_info=True)
                self._at = time.monotonic()
            return self._router

    def reload(self) -> None:
        with self._lock:
            self._at = float("-inf")


def health_report(
    *,
    ok: bool,
    statuses: Iterable[CameraStatus],
    threads: dict[str, bool],
    events_pending: int,
    outbox: dict[str, int] | None = None,
) -> dict[str, object]:
    """``/healthz`` of any composition: cameras by state, outbox rows pending and dead
    (none where the role does not deliver), events waiting, and its threads' liveness."""
    counts: dict[str, int] = {}
    for st in statuses:
        counts[st.state] = counts.get(st.state, 0) + 1
    outbox = outbox or {}
    return {
        "status": "ok" if ok and all(threads.values()) else "degraded",
        "cameras": counts,
        "dispatch_pending": int(outbox.get("pending", 0)),
        "dispatch_dead": int(outbox.get("dead", 0)),
        "events_pending": int(events_pending),
        "threads": threads,
    }
