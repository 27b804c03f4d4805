"""Releases: each one a PostgreSQL schema with its concordance catalogs.

`create_release` records the release and builds its schema and partitions in
one transaction (`sql/release.sql`); `publish_release` makes it readable in
one step.
"""

from __future__ import annotations

import json
import re

import psycopg
from psycopg.rows import dict_row

from jspdb import __version__
from jspdb.errors import ReleaseError

__all__ = ["NAME_RE", "create_release", "get_release", "list_releases", "publish_release"]

#: Release names are schema names: lower-case, start with a letter.
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_RESERVED = {"jsp", "public", "information_schema", "tap_schema", "ivoa", "pg_catalog"}


def _check_name(name: str) -> None:
    if not NAME_RE.match(name) or name in _RESERVED or name.startswith("pg_"):
        raise ReleaseError(
            f"bad release name {name!r}: use lower-case letters, digits and _, starting with a letter "
            f"(at most 31 characters), and not one of {sorted(_RESERVED)}"
        )


def create_release(
    conn: psycopg.Connection, name: str, partition_order: int, config: dict | None = None
) -> dict:
    """Create release ``name`` (state ``staging``), its schema and partitions.

    Parameters
    ----------
    conn
        psycopg 3 connection. The work is atomic (a savepoint inside the
        caller's transaction); the caller commits.
    name
        Release name, which is also its schema name (e.g. ``dr1``).
    partition_order
        HEALPix order of the catalog partitions (order 3: 768 partitions).
    config
        Processing configuration recorded with the release (provenance).

    Returns
    -------
    dict
        The new ``jsp.release`` row.
    """
    _check_name(name)
    try:
        with conn.transaction():
            exists = conn.execute(
                "SELECT 1 FROM jsp.release WHERE name = %s UNION ALL "
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (name, name)
            ).fetchone()
            if exists:
                raise ReleaseError(f"release {name!r} already exists")
            conn.execute(
                "INSERT INTO jsp.release (name, software_version, config, partition_order) VALUES (%s, %s, %s, %s)",
                (name, __version__, json.dumps(config or {}), partition_order),
            )
            conn.execute("SELECT jsp.create_release_schema(%s, %s)", (name, partition_order))
    except psycopg.errors.UniqueViolation as exc:  # lost a race with another creator
        raise ReleaseError(f"release {name!r} already exists") from exc
    except psycopg.errors.RaiseException as exc:
        raise ReleaseError(str(exc.diag.message_primary)) from exc
    return get_release(conn, name)


def get_release(conn: psycopg.Connection, name: str) -> dict:
    """The ``jsp.release`` row of ``name``; `ReleaseError` if there is none."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM jsp.release WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise ReleaseError(f"no release named {name!r}")
    return row


def list_releases(conn: psycopg.Connection) -> list[dict]:
    """All releases, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM jsp.release ORDER BY release_id").fetchall()


def publish_release(conn: psycopg.Connection, name: str) -> dict:
    """Make a staging release public (readable by ``jsp_reader``) atomically.

    State and grants change together (a savepoint inside the caller's
    transaction); the caller commits.
    """
    get_release(conn, name)
    try:
        with conn.transaction():
            conn.execute("SELECT jsp.publish_release(%s)", (name,))
    except psycopg.errors.RaiseException as exc:
        raise ReleaseError(str(exc.diag.message_primary)) from exc
    return get_release(conn, name)
