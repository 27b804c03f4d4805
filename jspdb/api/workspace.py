"""Private workspaces: a user's tables in their own schema ``u_<name>``.

Tables are created by the service (which owns the schema), filled with
COPY, and granted SELECT to the user's role alone; the role itself owns
nothing and cannot write. Users query them like any table (they appear in
their TAP_SCHEMA only) and join them with the catalogs.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from jspdb.api.service import Upload
from jspdb.api.users import Principal

__all__ = ["drop_table", "list_tables", "store_table"]

TABLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def store_table(conn: psycopg.Connection, owner: Principal, name: str, upload: Upload,
                replace: bool = False) -> int:
    """Create ``<owner schema>.<name>`` from ``upload``; returns rows stored (the caller commits)."""
    if owner.schema is None:
        raise ValueError("anonymous callers have no workspace")
    if not TABLE_RE.match(name):
        raise ValueError(f"bad table name {name!r}: lower-case letters, digits and _, starting with a letter")
    ident = sql.Identifier(owner.schema, name)
    exists = conn.execute("SELECT to_regclass(%s)", (f'"{owner.schema}"."{name}"',)).fetchone()[0]
    if exists and not replace:
        raise FileExistsError(f"table {owner.schema}.{name} exists (replace it with REPLACE=true)")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
    cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in upload.columns)
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, cols))
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(f"Uploaded by {owner.name}")))
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(ident)) as cp:
        for r in upload.rows:
            cp.write_row(r)
    conn.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(ident))
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(ident, sql.Identifier(owner.role)))
    conn.execute(sql.SQL("ANALYZE {}").format(ident))
    return len(upload.rows)


def list_tables(conn: psycopg.Connection, owner: Principal) -> list[dict]:
    """The tables in ``owner``'s workspace, with row estimates."""
    rows = conn.execute(
        "SELECT c.relname, greatest(c.reltuples, 0)::bigint, obj_description(c.oid, 'pg_class') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY c.relname", (owner.schema,)).fetchall()
    return [{"table": f"{owner.schema}.{r[0]}", "rows": r[1], "description": r[2]} for r in rows]


def drop_table(conn: psycopg.Connection, owner: Principal, name: str) -> bool:
    """Drop ``<owner schema>.<name>``; False if there is no such table (the caller commits)."""
    if not TABLE_RE.match(name):
        return False
    exists = conn.execute("SELECT to_regclass(%s)", (f'"{owner.schema}"."{name}"',)).fetchone()[0]
    if not exists:
        return False
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(owner.schema, name)))
    return True
