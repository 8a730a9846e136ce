"""The ``tracks`` table and its queries: insert, search in scope, retention.

One row per indexed track (see :mod:`tracks.indexer`); its area and camera name are
copied from the camera when indexed, so a search is scoped in SQL and a track keeps
the place it was seen even if the camera is moved later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Float, Index, Integer, String, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.area import LEVELS, Area
from core.db import Base

#: A search for tracks seen in [start, end) looks back this far for their first sighting
#: (``tracks.max_track_s`` is at most this), so the (first_seen) index serves it.
LONGEST_TRACK_S = 86400.0


class TrackRecord(Base):
    __tablename__ = "tracks"
    __table_args__ = (
        Index("ix_tracks_first_seen", "first_seen"),
        Index("ix_tracks_camera_first_seen", "camera_id", "first_seen"),
        Index("ix_tracks_class_colour", "object_class", "colour"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    camera_name: Mapped[str] = mapped_column(String(200), default="")
    county: Mapped[str | None] = mapped_column(String(64))
    township: Mapped[str | None] = mapped_column(String(64))
    village: Mapped[str | None] = mapped_column(String(64))
    grid: Mapped[str | None] = mapped_column(String(64))
    track_id: Mapped[int] = mapped_column(Integer)  # the tracker's id on that camera
    object_class: Mapped[str] = mapped_column(String(64))
    colour: Mapped[str | None] = mapped_column(String(16))
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    frames: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)  # median detection score
    thumbnail_path: Mapped[str | None] = mapped_column(String(500))
    clip_path: Mapped[str | None] = mapped_column(String(500))
    clip_sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)  # thumbnail + clip on disk
    created_at: Mapped[float] = mapped_column(Float)

    @property
    def area(self) -> Area:
        return Area(county=self.county, township=self.township, village=self.village,
                    grid=self.grid)  # fmt: skip


@dataclass(frozen=True)
class TrackQuery:
    start: float | None = None  # seen at or after (epoch seconds)
    end: float | None = None  # seen before
    camera_id: str | None = None
    area: tuple[str, ...] = ()  # an area path, county first
    object_class: str | None = None
    colour: str | None = None
    limit: int = 50
    offset: int = 0


def search(
    session: Session, q: TrackQuery, scope: Sequence[str] | None
) -> tuple[list[TrackRecord], int]:
    """Tracks matching ``q`` inside ``scope`` (an area path; None: everything), newest
    first, and the total before paging. A track matches a time range it overlaps."""
    stmt = select(TrackRecord)
    for path in (() if scope is None else tuple(scope), q.area):
        for level, value in zip(LEVELS, path, strict=False):
            stmt = stmt.where(getattr(TrackRecord, level) == value)
    if q.camera_id:
        stmt = stmt.where(TrackRecord.camera_id == q.camera_id)
    if q.object_class:
        stmt = stmt.where(TrackRecord.object_class == q.object_class)
    if q.colour:
        stmt = stmt.where(TrackRecord.colour == q.colour)
    if q.start is not None:
        stmt = stmt.where(TrackRecord.last_seen >= q.start,
                          TrackRecord.first_seen >= q.start - LONGEST_TRACK_S)  # fmt: skip
    if q.end is not None:
        stmt = stmt.where(TrackRecord.first_seen < q.end)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    page = stmt.order_by(TrackRecord.first_seen.desc(), TrackRecord.id).limit(q.limit)
    records = list(session.scalars(page.offset(q.offset)))
    return records, int(total)


def add_track(session: Session, record: TrackRecord) -> None:
    session.add(record)


def set_clip(session: Session, track_id: str, path: str, sha256: str, size: int) -> bool:
    """Attach a written clip to its track; False when the track is gone (retention)."""
    result = session.execute(
        update(TrackRecord)
        .where(TrackRecord.id == track_id)
        .values(clip_path=path, clip_sha256=sha256, size_bytes=TrackRecord.size_bytes + size)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def disk_bytes(session: Session) -> int:
    total = session.execute(select(func.coalesce(func.sum(TrackRecord.size_bytes), 0)))
    return int(total.scalar_one())


def expired(
    session: Session, before: float, quota_bytes: int, batch: int = 500
) -> list[TrackRecord]:
    """The tracks to delete: first seen before ``before``, then the oldest ones while the
    files of the rest exceed ``quota_bytes`` (at most ``batch`` a call)."""
    old = list(session.scalars(
        select(TrackRecord).where(TrackRecord.first_seen < before)
        .order_by(TrackRecord.first_seen).limit(batch)
    ))  # fmt: skip
    excess = disk_bytes(session) - sum(r.size_bytes for r in old) - quota_bytes
    if excess <= 0 or len(old) >= batch:
        return old
    taken = {r.id for r in old}
    for record in session.scalars(
        select(TrackRecord).order_by(TrackRecord.first_seen).limit(batch + len(old))
    ):
        if excess <= 0 or len(old) >= batch:
            break
        if record.id in taken:
            continue
        old.append(record)
        excess -= record.size_bytes
    return old


def delete_tracks(session: Session, ids: Sequence[str]) -> None:
    if ids:
        session.execute(delete(TrackRecord).where(TrackRecord.id.in_(list(ids))))
