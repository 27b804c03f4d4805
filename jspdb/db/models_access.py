"""Access-tier tables (schema ``jsp``): API users and tokens, UWS jobs, query log,
TAP column annotations.

These models sit on `jspdb.db.models.Base`, so Alembic's drift check covers
them; they are imported at the bottom of `jspdb.db.models`. None of these
tables is readable by ``jsp_reader`` (migration 0010 revokes it explicitly):
they never appear in TAP_SCHEMA and no ADQL query can reach them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from jspdb.db.models import SCHEMA, Base

__all__ = ["ApiToken", "ApiUser", "QueryLog", "TapAnnotation", "UwsJob"]


class ApiUser(Base):
    """A user of the query service, with a private schema and a database role."""

    __tablename__ = "api_user"
    __table_args__ = (
        CheckConstraint("name ~ '^[a-z][a-z0-9_]{0,30}$'", name="api_user_name_check"),
        {"schema": SCHEMA, "comment": "Users of the TAP service (bearer-token authenticated)"},
    )

    user_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    role_name: Mapped[str] = mapped_column(Text, unique=True, comment="LOGIN-less role queries run under")
    schema_name: Mapped[str] = mapped_column(Text, unique=True, comment="Private schema (uploads, saved results)")
    max_async_jobs: Mapped[int | None] = mapped_column(Integer, comment="Override of the default limit")
    max_rows: Mapped[int | None] = mapped_column(BigInteger, comment="Override of the default limit")
    max_bytes: Mapped[int | None] = mapped_column(BigInteger, comment="Override of the default limit")
    timeout_ms: Mapped[int | None] = mapped_column(Integer, comment="Override of the default limit")
    rate_per_min: Mapped[int | None] = mapped_column(Integer, comment="Override of the default limit")
    disabled: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiToken(Base):
    """A bearer token (only its SHA-256 is stored)."""

    __tablename__ = "api_token"
    __table_args__ = ({"schema": SCHEMA},)

    token_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.api_user.user_id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UwsJob(Base):
    """An asynchronous TAP job (UWS 1.1)."""

    __tablename__ = "uws_job"
    __table_args__ = (
        CheckConstraint(
            "phase IN ('PENDING', 'QUEUED', 'EXECUTING', 'COMPLETED', 'ERROR', 'ABORTED', 'ARCHIVED')",
            name="uws_job_phase_check",
        ),
        Index("uws_job_owner_idx", "owner_id", "phase"),
        Index("uws_job_destruction_idx", "destruction"),
        {"schema": SCHEMA, "comment": "Asynchronous TAP jobs (UWS 1.1)"},
    )

    job_id: Mapped[str] = mapped_column(Text, primary_key=True, comment="Random, unguessable")
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.api_user.user_id", ondelete="CASCADE"), comment="NULL: anonymous"
    )
    run_id: Mapped[str | None] = mapped_column(Text)
    phase: Mapped[str] = mapped_column(Text, server_default="PENDING")
    query: Mapped[str] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(Text, server_default="ADQL")
    maxrec: Mapped[int] = mapped_column(BigInteger)
    response_format: Mapped[str] = mapped_column(Text)
    uploads: Mapped[dict] = mapped_column(JSONB, server_default="{}", comment="name -> stored upload file")
    execution_duration: Mapped[int] = mapped_column(Integer, comment="Seconds")
    destruction: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    result_path: Mapped[str | None] = mapped_column(Text, comment="Datastore-relative path")
    result_rows: Mapped[int | None] = mapped_column(BigInteger)
    result_bytes: Mapped[int | None] = mapped_column(BigInteger)
    overflow: Mapped[bool] = mapped_column(Boolean, server_default="false")
    task_id: Mapped[str | None] = mapped_column(Text, comment="Celery task id")
    backend_pid: Mapped[int | None] = mapped_column(Integer, comment="Server process running it (for ABORT)")
    save_as: Mapped[str | None] = mapped_column(Text, comment="Table in the owner's schema to save the result in")


class QueryLog(Base):
    """One row per query the service ran (or refused)."""

    __tablename__ = "query_log"
    __table_args__ = (
        Index("query_log_user_idx", "user_id", "started_at"),
        {"schema": SCHEMA, "comment": "Every TAP query: who, when, how long, rows, status"},
    )

    log_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey(f"{SCHEMA}.api_user.user_id", ondelete="SET NULL"))
    user_name: Mapped[str] = mapped_column(Text, comment="anonymous or the user's name")
    mode: Mapped[str] = mapped_column(Text, comment="sync, async or sia")
    job_id: Mapped[str | None] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    duration_ms: Mapped[float | None] = mapped_column(Float)
    rows: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text, comment="OK, OVERFLOW, ERROR, REJECTED, TIMEOUT")
    error: Mapped[str | None] = mapped_column(Text)


class TapAnnotation(Base):
    """Unit, UCD, utype or description of a column for TAP_SCHEMA.

    ``schema_name``/``table_name`` may be ``*`` (any), so one row annotates a
    column of every release schema. Columns without an annotation get units
    and UCDs from the project's naming conventions (``sql/tap_schema.sql``).
    """

    __tablename__ = "tap_annotation"
    __table_args__ = ({"schema": SCHEMA, "comment": "TAP_SCHEMA column metadata beyond COMMENTs"},)

    schema_name: Mapped[str] = mapped_column(Text, primary_key=True)
    table_name: Mapped[str] = mapped_column(Text, primary_key=True)
    column_name: Mapped[str] = mapped_column(Text, primary_key=True)
    unit: Mapped[str | None] = mapped_column(Text)
    ucd: Mapped[str | None] = mapped_column(Text)
    utype: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    principal: Mapped[bool | None] = mapped_column(Boolean)
