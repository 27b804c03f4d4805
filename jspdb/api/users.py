"""Users of the query service: bearer tokens, database roles, private schemas.

``add_user`` creates, in one transaction, the ``jsp.api_user`` row, a
LOGIN-less role ``jsp_u_<random>`` that is a member of ``jsp_reader`` and
owns nothing, and a private schema ``u_<name>`` owned by the service (not
by the user's role) on which only that role has USAGE. Tables put there
(uploads, saved results) are created by the service and granted SELECT to
the role alone: PostgreSQL, not the application, keeps other users out.
Only the SHA-256 of a token is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from jspdb.errors import JspdbError

__all__ = ["ANONYMOUS", "Principal", "UserError", "add_user", "authenticate", "delete_user", "new_token"]

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
READER_ROLE = "jsp_reader"


class UserError(JspdbError):
    """A user cannot be created, found or authenticated."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user, or anonymous (``user_id`` None)."""

    user_id: int | None
    name: str
    role: str
    schema: str | None
    overrides: tuple[tuple[str, int], ...] = ()

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


ANONYMOUS = Principal(None, "anonymous", READER_ROLE, None)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(conn: psycopg.Connection, user_id: int) -> str:
    """Issue a new bearer token for ``user_id`` (the caller commits)."""
    token = "jsp_" + secrets.token_urlsafe(32)
    conn.execute("INSERT INTO jsp.api_token (user_id, token_sha256) VALUES (%s, %s)", (user_id, _hash(token)))
    return token


def add_user(conn: psycopg.Connection, name: str) -> tuple[dict, str]:
    """Create user ``name`` with its role and private schema; return (row, token).

    The caller commits. Raises `UserError` for a bad or taken name.
    """
    if not NAME_RE.match(name):
        raise UserError(f"bad user name {name!r}: lower-case letters, digits and _, starting with a letter")
    role = f"jsp_u_{secrets.token_hex(6)}"
    schema = f"u_{name}"
    try:
        with conn.transaction():
            if conn.execute("SELECT 1 FROM jsp.api_user WHERE name = %s", (name,)).fetchone():
                raise UserError(f"user {name!r} already exists")
            if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
                raise UserError(f"schema {schema!r} already exists")
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE {}").format(
                sql.Identifier(role), sql.Identifier(READER_ROLE)))
            # The service must be able to SET ROLE to it (a no-op for superusers).
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                sql.Identifier(schema), sql.Literal(f"Private workspace of {name}")))
            conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema),
                                                                          sql.Identifier(role)))
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(
                    "INSERT INTO jsp.api_user (name, role_name, schema_name) VALUES (%s, %s, %s) RETURNING *",
                    (name, role, schema)).fetchone()
            token = new_token(conn, row["user_id"])
    except psycopg.errors.UniqueViolation as exc:
        raise UserError(f"user {name!r} already exists") from exc
    return row, token


def delete_user(conn: psycopg.Connection, name: str) -> None:
    """Remove a user, their schema (with its tables), jobs and role (the caller commits)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM jsp.api_user WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise UserError(f"no user named {name!r}")
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(row["schema_name"])))
    conn.execute("DELETE FROM jsp.api_user WHERE user_id = %s", (row["user_id"],))
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(row["role_name"])))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(row["role_name"])))


def authenticate(conn: psycopg.Connection, token: str) -> Principal | None:
    """The principal a bearer token belongs to, or None for an unknown/revoked token."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT u.* FROM jsp.api_token t JOIN jsp.api_user u USING (user_id) "
            "WHERE t.token_sha256 = %s AND t.revoked_at IS NULL AND NOT u.disabled",
            (_hash(token),)).fetchone()
    if row is None:
        return None
    overrides = tuple((k, row[k]) for k in ("max_rows", "max_bytes", "timeout_ms", "max_async_jobs",
                                            "rate_per_min") if row[k] is not None)
    return Principal(row["user_id"], row["name"], row["role_name"], row["schema_name"], overrides)
