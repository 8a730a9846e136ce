"""The recording index: one row per MP4 segment, and the ranges held for a case (保全).

Segments are stored files (see :mod:`recording.recorder`); a row says which camera, which
wall-clock span, the file's size and SHA-256, the codec and resolution, and how many
alerts fell in it. Rows and files are deleted together by retention.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import BigInteger, Float, Index, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base


class SegmentRecord(Base):
    __tablename__ = "recording_segments"
    __table_args__ = (
        Index("ix_recording_segments_camera_start", "camera_id", "start"),
        Index("ix_recording_segments_start", "start"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(500))  # the file in the recording storage
    start: Mapped[float] = mapped_column(Float)  # epoch seconds of the first (key) frame
    end: Mapped[float] = mapped_column(Float)  # epoch seconds after the last frame
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    codec: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16))  # continuous | events | motion | objects
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    # seconds of the segment with motion / with moving tracked objects (the analysis; 0
    # for a camera not analysed, a repaired segment, or one recorded before 0016)
    motion_s: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    objects_s: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    repaired: Mapped[int] = mapped_column(Integer, default=0)  # 1: rebuilt after a crash
    created_at: Mapped[float] = mapped_column(Float)


class RecordingHold(Base):
    """A camera's range kept for a case (保全): retention never deletes its segments."""

    __tablename__ = "recording_holds"
    __table_args__ = (Index("ix_recording_holds_camera", "camera_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    case_number: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)


def new_id() -> str:
    return str(uuid.uuid4())


def add_segment(session: Session, row: SegmentRecord) -> None:
    session.add(row)


def segments_in(
    session: Session, camera_id: str, start: float, end: float, limit: int = 10000
) -> Sequence[SegmentRecord]:
    """The camera's segments overlapping [start, end), oldest first."""
    stmt = (
        select(SegmentRecord)
        .where(
            SegmentRecord.camera_id == camera_id,
            SegmentRecord.start < end,
            SegmentRecord.end > start,
        )  # fmt: skip
        .order_by(SegmentRecord.start)
        .limit(limit)
    )
    return session.scalars(stmt).all()


def keys_of(session: Session, camera_id: str | None = None) -> set[str]:
    stmt = select(SegmentRecord.key)
    if camera_id is not None:
        stmt = stmt.where(SegmentRecord.camera_id == camera_id)
    return set(session.scalars(stmt))


def oldest_segments(session: Session, limit: int = 500) -> Sequence[SegmentRecord]:
    return session.scalars(select(SegmentRecord).order_by(SegmentRecord.start).limit(limit)).all()


def total_bytes(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(SegmentRecord.size_bytes), 0))) or 0)


def delete_segments(session: Session, ids: Sequence[str]) -> None:
    if ids:
        session.execute(delete(SegmentRecord).where(SegmentRecord.id.in_(list(ids))))


def holds(session: Session) -> Sequence[RecordingHold]:
    return session.scalars(select(RecordingHold)).all()
