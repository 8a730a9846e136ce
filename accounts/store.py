"""The accounts tables, declared on :data:`core.db.Base` (Alembic creates them).

Secrets are never stored: passwords as argon2id hashes, login tokens and API keys as
the SHA-256 hex of the opaque value. The column lengths below are the limits the
service checks before inserting (a too-long value is a ValueError, not a DB error).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.area import Area
from core.db import Base
from core.model import AREA_PART_MAX, ID_MAX, NAME_MAX

USERNAME_MAX = ID_MAX  # 64
DISPLAY_NAME_MAX = NAME_MAX  # 100
ROLE_MAX = 16
KEY_NAME_MAX = NAME_MAX  # 100
KEY_PREFIX_MAX = 16
SHA256_HEX = 64
AUDIT_ACTION_MAX = 32
AUDIT_TARGET_MAX = 200
IP_MAX = 64
THROTTLE_KEY_MAX = 200  # "account:" + a casefolded name, or "address:" + an IP


class UserRecord(Base):
    """A person or a machine (``password_hash`` None: API keys only)."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(USERNAME_MAX), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX), default="")
    role: Mapped[str] = mapped_column(String(ROLE_MAX))
    county: Mapped[str | None] = mapped_column(String(AREA_PART_MAX), nullable=True)
    township: Mapped[str | None] = mapped_column(String(AREA_PART_MAX), nullable=True)
    village: Mapped[str | None] = mapped_column(String(AREA_PART_MAX), nullable=True)
    grid: Mapped[str | None] = mapped_column(String(AREA_PART_MAX), nullable=True)
    department_id: Mapped[str | None] = mapped_column(String(ID_MAX), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    last_login_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    def area(self) -> Area:
        return Area(county=self.county, township=self.township, village=self.village,
                    grid=self.grid)  # fmt: skip

    def set_area(self, area: Area) -> None:
        self.county, self.township = area.county, area.township
        self.village, self.grid = area.village, area.grid


class ApiKeyRecord(Base):
    """An API key of a user; the key itself is shown once and only its hash kept."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index("ix_api_keys_key_hash", "key_hash", unique=True),
        Index("ix_api_keys_username", "username"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), ForeignKey("users.username"))
    name: Mapped[str] = mapped_column(String(KEY_NAME_MAX))
    prefix: Mapped[str] = mapped_column(String(KEY_PREFIX_MAX))  # shown in lists
    key_hash: Mapped[str] = mapped_column(String(SHA256_HEX))
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AuthTokenRecord(Base):
    """A login token (bearer or session cookie), by the SHA-256 of the opaque value."""

    __tablename__ = "auth_tokens"
    __table_args__ = (Index("ix_auth_tokens_username", "username"),)

    token_hash: Mapped[str] = mapped_column(String(SHA256_HEX), primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), ForeignKey("users.username"))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class AuditRecord(Base):
    """Who did what to what, when, from where."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_ts", "ts"),
        Index("ix_audit_log_action", "action"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(USERNAME_MAX))
    action: Mapped[str] = mapped_column(String(AUDIT_ACTION_MAX))
    target: Mapped[str] = mapped_column(String(AUDIT_TARGET_MAX))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    ip: Mapped[str | None] = mapped_column(String(IP_MAX), nullable=True)


class LoginFailureRecord(Base):
    """Failed logins of one throttle key (``account:<name>`` or ``address:<ip>``):
    accounts/throttle.py, shared by every API process through the database."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_last_at", "last_at"),)

    key: Mapped[str] = mapped_column(String(THROTTLE_KEY_MAX), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[float] = mapped_column(Float)


#: The tables of this package, in creation order (for tests and migrations):
#: ``Base.metadata.create_all(engine, tables=TABLES)``.
TABLES: list[Table] = [
    Base.metadata.tables[record.__tablename__]
    for record in (UserRecord, ApiKeyRecord, AuthTokenRecord, AuditRecord, LoginFailureRecord)
]
