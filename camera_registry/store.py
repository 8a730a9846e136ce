"""SQL-backed camera records."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Boolean, Float, String, Text, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from camera_registry.config import CameraBase
from camera_registry.urls import has_credentials, mask_secrets, mask_url
from core.db import Base
from core.secrets import SecretCipher, SecretError


def _secret_slots(data: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(mapping, key) of every secret in a stored camera config: the passwords, and
    the URL when it carries credentials in its path or query (Dahua/XMeye style)."""
    source = data.get("source")
    if not isinstance(source, dict):
        return
    for holder in (source, source.get("onvif")):
        if isinstance(holder, dict) and isinstance(holder.get("password"), str):
            yield holder, "password"
    for key in ("url", "sub_url"):
        url = source.get(key)
        if isinstance(url, str) and (SecretCipher.is_encrypted(url) or has_credentials(url)):
            yield source, key


def _map_secrets(data: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for holder, key in _secret_slots(out):
        holder[key] = fn(holder[key])
    return out


def encrypt_secrets(data: dict[str, Any], cipher: SecretCipher) -> dict[str, Any]:
    """A copy of a camera config with its secrets encrypted."""
    return _map_secrets(data, cipher.encrypt)


#: What the API sees of a sub stream URL that carries credentials in its path or query.
MASKED_SUB_URL = "rtsp://masked.invalid/sub"


def _no_key(value: str) -> str:
    if SecretCipher.is_encrypted(value):
        raise SecretError("the stored camera password is encrypted: the secret key is needed")
    return value


class CameraRecord(Base):
    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    programme: Mapped[str] = mapped_column(String(32), default="other")
    county: Mapped[str | None] = mapped_column(String(64), index=True)
    township: Mapped[str | None] = mapped_column(String(64), index=True)
    village: Mapped[str | None] = mapped_column(String(64))
    grid: Mapped[str | None] = mapped_column(String(64))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    gb28181_id: Mapped[str | None] = mapped_column(String(20), index=True)
    source_kind: Mapped[str] = mapped_column(String(16))  # url | onvif
    source_display: Mapped[str] = mapped_column(String(500))  # never holds credentials
    resolved_url: Mapped[str | None] = mapped_column(String(500))  # from ONVIF, no credentials
    detect_fps: Mapped[float] = mapped_column(Float, default=5.0)
    origin: Mapped[str] = mapped_column(String(16), default="config")  # config | import | api
    # The validated camera config; its secrets encrypted (core.secrets): never returned
    # by the API. Records of older versions may hold them in plain text.
    config_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time, index=True)

    def raw_config(self) -> dict[str, Any]:
        """The stored config as stored (secrets encrypted); raises ValueError if damaged."""
        data = json.loads(self.config_json)
        if not isinstance(data, dict):
            raise ValueError("stored camera config is not a mapping")
        return data

    def config_data(self, cipher: SecretCipher | None = None) -> dict[str, Any]:
        """The stored camera config with its secrets decrypted: validate it with the
        model of the layer that needs it (``analytics.config.CameraConfig`` for the hub).

        Raises :class:`SecretError` (a ValueError) when a secret cannot be decrypted
        (the key changed, or no ``cipher`` for an encrypted record).
        """
        return _map_secrets(self.raw_config(), cipher.decrypt if cipher else _no_key)

    def public_config_data(self) -> dict[str, Any]:
        """The stored config without its secrets (what the API may look at: zones, rules)."""
        data = self.raw_config()
        for holder, key in _secret_slots(data):
            # An encrypted URL is replaced by its masked form, which still validates.
            # (A sub stream URL holding credentials: a placeholder that still validates.)
            holder[key] = {"url": self.source_display, "sub_url": MASKED_SUB_URL}.get(key)
        return data

    def has_plain_secrets(self) -> bool:
        """Whether this record still holds a secret in plain text (an older version's)."""
        data = self.raw_config()
        return any(not SecretCipher.is_encrypted(h[k]) for h, k in _secret_slots(data))


class CameraAnalyticsRecord(Base):
    """Zones, rules and motion gate of a camera as edited in the console: they override
    the camera's config (file or import) until cleared, so an edit survives a restart."""

    __tablename__ = "camera_analytics"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data_json: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[float] = mapped_column(Float)

    def data(self) -> dict[str, Any]:
        data = json.loads(self.data_json)
        if not isinstance(data, dict):
            raise ValueError("stored camera analytics is not a mapping")
        return data


def analytics_override(session: Session, camera_id: str) -> CameraAnalyticsRecord | None:
    return session.get(CameraAnalyticsRecord, camera_id)


def set_analytics_override(
    session: Session, camera_id: str, data: dict[str, Any], actor: str
) -> CameraAnalyticsRecord:
    """Store the console's zones/rules/motion of a camera (replacing earlier ones)."""
    record = session.get(CameraAnalyticsRecord, camera_id)
    if record is None:
        record = CameraAnalyticsRecord(camera_id=camera_id)
        session.add(record)
    record.data_json = json.dumps(data, ensure_ascii=False)
    record.updated_by = actor
    record.updated_at = time.time()
    return record


def clear_analytics_override(session: Session, camera_id: str) -> bool:
    record = session.get(CameraAnalyticsRecord, camera_id)
    if record is None:
        return False
    session.delete(record)
    return True


class PatrolSightingsRecord(Base):
    """What a camera's last patrol visit saw of its still vehicles (analytics/revisit.py,
    as JSON): compared with on its next visit, also after a restart or on another worker."""

    __tablename__ = "patrol_sightings"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    visited_at: Mapped[float] = mapped_column(Float)
    data_json: Mapped[str] = mapped_column(Text)


class SqlPatrolSightings:
    """The last visit's sightings per camera in ``patrol_sightings`` (one small row per
    camera with a stopped_vehicle rule, rewritten at each of its visits)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def load(self, camera_id: str) -> dict[str, Any] | None:
        with self.sessions() as session:
            record = session.get(PatrolSightingsRecord, camera_id)
            if record is None:
                return None
            data = json.loads(record.data_json)
        if not isinstance(data, dict):
            raise ValueError(f"camera {camera_id}: stored patrol sightings are not a mapping")
        return data

    def save(self, camera_id: str, visited_at: float, data: dict[str, Any]) -> None:
        text = json.dumps(data, separators=(",", ":"))
        for _attempt in range(2):  # two workers inserting one camera's row: the loser updates
            try:
                with self.sessions.begin() as session:
                    record = session.get(PatrolSightingsRecord, camera_id)
                    if record is None:
                        record = PatrolSightingsRecord(camera_id=camera_id)
                        session.add(record)
                    record.visited_at, record.data_json = visited_at, text
                return
            except IntegrityError:
                continue


def clear_patrol_sightings(session: Session, camera_id: str) -> None:
    """Forget what the patrol saw of a deleted camera (a new camera under its id starts
    afresh)."""
    session.execute(delete(PatrolSightingsRecord).where(
        PatrolSightingsRecord.camera_id == camera_id))  # fmt: skip


def invalid_config_error(exc: ValueError) -> str:
    """Why a stored config cannot be used, in one line, without its values (secrets)."""
    if isinstance(exc, ValidationError):
        text = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
    else:
        text = str(exc)
    return mask_secrets(f"stored config cannot be used by this version: {text}")


def source_display(cam: CameraBase) -> tuple[str, str]:
    """(kind, credential-free description) of a camera's source."""
    if cam.source.onvif is not None:
        return "onvif", f"onvif://{cam.source.onvif.host}:{cam.source.onvif.port}"
    assert cam.source.url is not None
    return "url", mask_url(cam.source.url)


def upsert_camera(
    session: Session, cam: CameraBase, *, origin: str, cipher: SecretCipher
) -> CameraRecord:
    """Insert or update one camera from its validated config, its secrets encrypted."""
    record = session.get(CameraRecord, cam.id)
    now = time.time()
    if record is None:
        record = CameraRecord(id=cam.id, created_at=now)
        session.add(record)
    kind, display = source_display(cam)
    values: dict[str, Any] = dict(
        name=cam.name or cam.id,
        enabled=cam.enabled,
        programme=cam.programme,
        county=cam.area.county,
        township=cam.area.township,
        village=cam.area.village,
        grid=cam.area.grid,
        lat=cam.lat,
        lon=cam.lon,
        gb28181_id=cam.gb28181_id,
        source_kind=kind,
        source_display=display,
        detect_fps=cam.detect_fps,
        origin=origin,
        config_json=json.dumps(
            encrypt_secrets(cam.model_dump(mode="json"), cipher), ensure_ascii=False
        ),
        updated_at=now,
    )
    for key, value in values.items():
        setattr(record, key, value)
    return record


def list_cameras(session: Session, *, enabled_only: bool = False) -> list[CameraRecord]:
    stmt = select(CameraRecord).order_by(CameraRecord.id)
    if enabled_only:
        stmt = stmt.where(CameraRecord.enabled.is_(True))
    return list(session.execute(stmt).scalars())


def camera_ids_in_area(session: Session, path: tuple[str, ...]) -> set[str]:
    """The ids of the cameras inside the area of ``path`` (county, township, ... from the
    top; ``Area.contains``), read as ids only: no row object, no config."""
    stmt = select(CameraRecord.id)
    for column, part in zip(AREA_COLUMNS, path, strict=False):
        stmt = stmt.where(column == part)
    return set(session.execute(stmt).scalars())


def encrypt_plain_secrets(session: Session, cipher: SecretCipher) -> list[str]:
    """Encrypt the secrets older versions stored in plain text; the ids changed.

    A record that cannot be read is left as it is (it is reported where it is used).
    """
    changed = []
    for record in list_cameras(session):
        try:
            if not record.has_plain_secrets():
                continue
            record.config_json = json.dumps(
                encrypt_secrets(record.raw_config(), cipher), ensure_ascii=False
            )
        except ValueError:
            continue
        changed.append(record.id)
    return changed


def set_resolved_url(session: Session, camera_id: str, url: str | None) -> None:
    record = session.get(CameraRecord, camera_id)
    if record is not None:
        record.resolved_url = mask_url(url) if url else None
        record.updated_at = time.time()


def remove_stale_config_cameras(session: Session, keep: set[str]) -> list[str]:
    """Delete cameras that came from the config file but are no longer in it.

    Imported cameras (origin ``import``/``api``) are left alone.
    """
    stale = [
        r for r in session.execute(select(CameraRecord).where(CameraRecord.origin == "config"))
        .scalars() if r.id not in keep
    ]  # fmt: skip
    for record in stale:
        session.delete(record)
        clear_analytics_override(session, record.id)
        clear_patrol_sightings(session, record.id)
    return [r.id for r in stale]


_PLACE = ("county", "township", "village")


def _in_scope(stmt: Any, scope: tuple[str, ...]) -> Any:
    """``stmt`` narrowed to an area path (county, township, village, grid)."""
    for level, value in zip((*_PLACE, "grid"), scope, strict=False):
        stmt = stmt.where(getattr(CameraRecord, level) == value)
    return stmt


def count_by_area(
    session: Session, scope: tuple[str, ...] = ()
) -> list[tuple[str | None, str | None, str | None, int]]:
    """(county, township, village, cameras) of every place cameras are registered at,
    within ``scope`` (an area path: the county, the township...); one GROUP BY."""
    levels = [getattr(CameraRecord, level) for level in _PLACE]
    stmt = _in_scope(select(*levels, func.count()).group_by(*levels), scope)
    return [(c, t, v, n) for c, t, v, n in session.execute(stmt)]


def camera_places(
    session: Session, ids: Collection[str], scope: tuple[str, ...] = ()
) -> list[tuple[str | None, str | None, str | None]]:
    """(county, township, village) of those of the cameras ``ids`` within ``scope``."""
    levels = [getattr(CameraRecord, level) for level in _PLACE]
    stmt = _in_scope(select(CameraRecord.id, *levels), scope)
    wanted = ids if isinstance(ids, (set, frozenset)) else set(ids)
    return [(c, t, v) for i, c, t, v in session.execute(stmt) if i in wanted]


#: The area columns of a camera row, from the county down (core.area.LEVELS).
AREA_COLUMNS = (CameraRecord.county, CameraRecord.township, CameraRecord.village,
                CameraRecord.grid)  # fmt: skip
