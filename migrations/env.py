"""Alembic environment for jspdb.

Discipline (after pypi/warehouse): every run takes a session advisory lock
first, so concurrent ``jsp db upgrade`` calls are serialised instead of
racing; then ``lock_timeout`` makes a migration that waits behind a running
query fail fast rather than queue every other client behind its lock.
"""

from __future__ import annotations

import re

from alembic import context
from sqlalchemy import text

from jspdb.db import types  # noqa: F401  (registers pgsphere types for reflection)
from jspdb.db.models import SCHEMA, Base

#: pg_advisory_lock key of schema migrations (any constant shared by all runs).
MIGRATION_LOCK_KEY = 0x6A7370_6462  # "jspdb"

_PARTITION = re.compile(r"_p\d+_\d+$")
#: Objects created by migrations in SQL that the models do not describe.
_UNMODELLED_INDEXES = {"refcat_q3c_idx"}


def include_name(name, type_, parent_names):
    if type_ == "schema":
        return name == SCHEMA
    if type_ == "table":
        return not _PARTITION.search(name or "")
    return True


def include_object(obj, name, type_, reflected, compare_to):
    if type_ == "table" and name and _PARTITION.search(name):
        return False
    if type_ == "index" and (name in _UNMODELLED_INDEXES or (name and _PARTITION.search(name))):
        return False
    return True


def run_migrations_online() -> None:
    config = context.config
    connection = config.attributes["connection"]
    lock_timeout_ms = int(config.attributes.get("lock_timeout_ms", 5000))
    statement_timeout_ms = int(config.attributes.get("statement_timeout_ms", 600000))

    # Session-level lock, taken before lock_timeout applies to this session:
    # a second upgrade must wait for the first, not fail.
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    try:
        # A role named like one of our schemas would put it first on the
        # default "$user", public path and confuse reflection: be explicit.
        connection.execute(text("SET search_path = public"))
        connection.execute(text(f"SET lock_timeout = {lock_timeout_ms}"))
        connection.execute(text(f"SET statement_timeout = {statement_timeout_ms}"))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_schemas=True,
            include_name=include_name,
            include_object=include_object,
            compare_type=True,
            transaction_per_migration=False,
            # Lets callers report what this run (not another one) applied.
            on_version_apply=lambda step, **kw: config.attributes.setdefault("applied", []).append(
                f"{'+' if step.is_upgrade else '-'}{step.up_revision_id if step.is_upgrade else step.down_revision_ids}"
            ),
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.rollback()
        connection.execute(text("RESET lock_timeout"))
        connection.execute(text("RESET statement_timeout"))
        connection.execute(text("RESET search_path"))
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("jspdb migrations run online only (they need the advisory lock)")
run_migrations_online()
