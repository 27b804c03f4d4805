"""Running ADQL: translation, the read-only transaction, uploads, the query log.

Every query runs in its own transaction on a pooled connection:

1. uploads (TAP_UPLOAD) are copied into ``ON COMMIT DROP`` temporary tables
   and granted to the caller's role — they live and die with the query;
2. ``SET LOCAL ROLE`` to the caller's role (``jsp_reader`` or the user's own
   LOGIN-less role: SELECT only, owns nothing), ``transaction_read_only``,
   ``statement_timeout`` and ``jit = off`` (JIT compiles for seconds on
   partitioned plans), all transaction-scoped so the pooled connection
   keeps none of them;
3. the translated SELECT, cut at MAXREC + 1 rows to detect overflow;
4. ROLLBACK (nothing could be written anyway).

Used by the API (sync) and by the Celery worker (async).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from jspdb.adql import AdqlError, Catalog, translate
from jspdb.adql.translate import mask_strings, unmask_strings
from jspdb.api.formats import Column, ResultSet
from jspdb.api.users import Principal
from jspdb.errors import JspdbError

__all__ = ["QueryError", "QueryService", "QueryTimeout", "Upload"]

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_GEOM_NUM = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
_BUILTIN = {16: ("boolean", None, None), 20: ("long", None, None), 21: ("short", None, None),
            23: ("int", None, None), 700: ("float", None, None), 701: ("double", None, None),
            1700: ("double", None, None), 1184: ("char", "*", "timestamp"), 1114: ("char", "*", "timestamp"),
            1082: ("char", "*", None)}


class QueryError(JspdbError):
    """A query failed in the database (the message is the database's, cleaned)."""


class QueryTimeout(QueryError):
    """A query ran past its time limit and was cancelled."""


@dataclass
class Upload:
    """A user table for one query (TAP_UPLOAD.name): column names, PostgreSQL types, rows."""

    name: str
    columns: list[tuple[str, str]]
    rows: list[tuple]


def upload_from_table(name: str, table) -> Upload:
    """An `Upload` from an astropy Table (VOTable or CSV input)."""
    if not _IDENT.match(name):
        raise AdqlError(f"bad upload table name {name!r}")
    cols: list[tuple[str, str]] = []
    data = []
    for cname in table.colnames:
        if not _IDENT.match(cname):
            raise AdqlError(f"bad column name {cname!r} in upload {name!r}")
        col = table[cname]
        kind = col.dtype.kind
        if kind == "f":
            pg = "double precision"
        elif kind in "iu":
            pg = "bigint"
        elif kind == "b":
            pg = "boolean"
        else:
            pg = "text"
        cols.append((cname.lower(), pg))
        mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else np.zeros(len(col), bool)
        vals = col.tolist() if not hasattr(col, "filled") else np.asarray(col).tolist()
        if pg == "text":
            vals = [v.decode() if isinstance(v, bytes) else str(v) for v in vals]
        data.append([None if m else v for v, m in zip(vals, mask, strict=True)])
    return Upload(name.lower(), cols, list(zip(*data, strict=True)) if data else [])


class QueryService:
    """Runs ADQL for principals; one per process (owns a connection pool).

    Parameters
    ----------
    dsn
        libpq connection string of the warehouse (a role that may SET ROLE to
        ``jsp_reader`` and the users' roles, and create temporary tables).
    pool_max
        Largest number of pooled connections.
    catalog_ttl_s
        How long a role's TAP_SCHEMA is cached.
    """

    def __init__(self, dsn: str, pool_max: int = 16, catalog_ttl_s: float = 30.0) -> None:
        self.dsn = dsn
        self.pool = ConnectionPool(dsn, min_size=2, max_size=pool_max, open=True,
                                   kwargs={"application_name": "jspdb-tap", "autocommit": False})
        self._ttl = catalog_ttl_s
        self._catalogs: dict[str, tuple[float, Catalog, dict[str, dict[str, Column]]]] = {}
        self._lock = threading.Lock()
        self._types: dict[int, tuple[str, str | None, str | None]] = dict(_BUILTIN)
        with self.pool.connection() as conn:
            for oid, name in conn.execute(
                    "SELECT oid::int, typname FROM pg_type WHERE typname IN ('spoint', 'scircle', 'spoly')"):
                self._types[oid] = {"spoint": ("double", "2", "point"), "scircle": ("double", "3", "circle"),
                                    "spoly": ("double", "*", "polygon")}[name]
            conn.rollback()
        self._geom_oids = {o for o, t in self._types.items() if t[2] in ("point", "circle", "polygon")}

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()

    # -- metadata -------------------------------------------------------------

    def catalog(self, role: str) -> tuple[Catalog, dict[str, dict[str, Column]]]:
        """TAP_SCHEMA as ``role`` sees it: translator catalog and column metadata."""
        now = time.monotonic()
        with self._lock:
            hit = self._catalogs.get(role)
            if hit and now - hit[0] < self._ttl:
                return hit[1], hit[2]
        meta: dict[str, dict[str, Column]] = {}
        hpx: dict[str, int] = {}
        with self.pool.connection() as conn:
            try:
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                rows = conn.execute(
                    "SELECT lower(table_name), column_name, datatype, arraysize, xtype, unit, ucd, utype, "
                    "description FROM tap_schema.columns ORDER BY table_name, column_index").fetchall()
                conn.execute("RESET ROLE")
                for t, c, dt, asz, xt, unit, ucd, utype, desc in rows:
                    meta.setdefault(t, {})[c] = Column(c, dt, asz, xt, unit, ucd, utype, desc)
                parts = [t for t, cols in meta.items() if "hpx29" in cols]
                if parts:
                    for t, order in conn.execute(
                            "SELECT t, jsp.hpx_partition_order(t::regclass) FROM unnest(%s::text[]) AS t",
                            (parts,)):
                        if order is not None:
                            hpx[t] = int(order)
            finally:
                conn.rollback()
        cat = Catalog(columns={t: list(cols) for t, cols in meta.items()}, hpx_order=hpx)
        with self._lock:
            self._catalogs[role] = (now, cat, meta)
        return cat, meta

    def forget_catalogs(self) -> None:
        """Drop cached TAP_SCHEMAs (after a user's tables changed)."""
        with self._lock:
            self._catalogs.clear()

    # -- running ---------------------------------------------------------------

    def translate(self, adql: str, principal: Principal, uploads: list[Upload] | None = None) -> str:
        """Translate ``adql`` for ``principal`` (uploads appear as ``TAP_UPLOAD.name``)."""
        cat, _ = self.catalog(principal.role)
        if uploads:
            cat = Catalog(columns=dict(cat.columns), hpx_order=cat.hpx_order)
            for u in uploads:
                cat.columns[f"tap_upload.{u.name}"] = [c for c, _ in u.columns]
        tr = translate(adql, cat)
        text = tr.sql
        if uploads:  # TAP_UPLOAD.x is the query's temporary table x (string literals untouched)
            masked, strings = mask_strings(text)
            text = unmask_strings(re.sub(r"(?i)\btap_upload\.", "pg_temp.", masked), strings)
        return text

    def run(self, adql: str, principal: Principal, maxrec: int, timeout_ms: int,
            uploads: list[Upload] | None = None, on_start: Callable[[int], None] | None = None) -> ResultSet:
        """Translate and run ``adql``; at most ``maxrec`` rows, overflow flagged.

        ``on_start`` is called with the server process id before the query
        runs (so an ABORT can cancel it).

        Raises
        ------
        AdqlError
            The query was refused before reaching the database.
        QueryTimeout
            It ran longer than ``timeout_ms``.
        QueryError
            The database refused it (message included).
        """
        text = self.translate(adql, principal, uploads)
        return self.run_sql(text, None, principal, maxrec, timeout_ms, uploads, on_start)

    def run_sql(self, text: str, params: list | None, principal: Principal, maxrec: int, timeout_ms: int,
                uploads: list[Upload] | None = None, on_start: Callable[[int], None] | None = None) -> ResultSet:
        """Run one SELECT of ours (translated ADQL, or SQL with bound ``params``) as ``principal``."""
        _, meta = self.catalog(principal.role)
        limited = f"SELECT * FROM ({text}) AS _jsp_q LIMIT {int(maxrec) + 1}"
        with self.pool.connection() as conn:
            try:
                with conn.cursor() as cur:
                    for u in uploads or []:
                        self._create_upload(cur, u, principal.role)
                    cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(principal.role)))
                    cur.execute("SELECT set_config('transaction_read_only', 'on', true), "
                                "set_config('statement_timeout', %s, true), set_config('jit', 'off', true)",
                                (str(int(timeout_ms)),))
                    if on_start is not None:
                        on_start(conn.info.backend_pid)
                    cur.execute(limited, params)
                    rows = cur.fetchall()
                    desc = cur.description or []
            except psycopg.errors.QueryCanceled as exc:
                raise QueryTimeout(f"query cancelled: it ran longer than its limit of {timeout_ms / 1000:g} s "
                                   f"(use an async job with a longer EXECUTIONDURATION, or narrow it)") from exc
            except psycopg.errors.InsufficientPrivilege as exc:
                raise QueryError(f"not allowed: {exc.diag.message_primary}") from exc
            except psycopg.Error as exc:
                msg = exc.diag.message_primary or str(exc)
                hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
                raise QueryError(f"query failed: {msg}{hint}") from exc
            finally:
                conn.rollback()
        overflow = len(rows) > maxrec
        if overflow:
            rows = rows[:maxrec]
        columns = self._columns(desc, text, meta)
        geo = [i for i, d in enumerate(desc) if d.type_code in self._geom_oids]
        if geo or any(c.xtype == "timestamp" for c in columns):
            rows = [self._convert(r, geo, columns) for r in rows]
        return ResultSet(columns, rows, overflow)

    def _create_upload(self, cur: psycopg.Cursor, u: Upload, role: str) -> None:
        name = sql.Identifier("pg_temp", u.name)
        cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in u.columns)
        cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
            sql.Identifier(u.name), cols))
        with cur.copy(sql.SQL("COPY {} FROM STDIN").format(name)) as cp:
            for r in u.rows:
                cp.write_row(r)
        cur.execute(sql.SQL("ANALYZE {}").format(name))
        cur.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(name, sql.Identifier(role)))

    def _columns(self, desc, text: str, meta: dict[str, dict[str, Column]]) -> list[Column]:
        lowered = text.lower()
        used = [t for t in meta if t in lowered]
        out = []
        for d in desc:
            dt, asz, xt = self._types.get(d.type_code, ("char", "*", None))
            col = Column(d.name, dt, asz, xt)
            for t in used:
                m = meta[t].get(d.name)
                if m is not None:
                    col = Column(d.name, dt, asz, xt or m.xtype, m.unit, m.ucd, m.utype, m.description)
                    break
            out.append(col)
        return out

    @staticmethod
    def _convert(row: tuple, geo: list[int], columns: list[Column]) -> tuple:
        r = list(row)
        for i in geo:
            v = r[i]
            if v is not None:
                nums = [float(x) for x in _GEOM_NUM.findall(str(v))]
                r[i] = [float(np.degrees(x)) for x in nums]
        for i, c in enumerate(columns):
            if c.xtype == "timestamp" and r[i] is not None and hasattr(r[i], "isoformat"):
                r[i] = r[i].isoformat()
        return tuple(r)

    def log(self, principal: Principal, mode: str, query: str, duration_ms: float, rows: int | None,
            status: str, error: str | None = None, job_id: str | None = None) -> None:
        """Record one query in ``jsp.query_log``."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO jsp.query_log (user_id, user_name, mode, job_id, query, duration_ms, rows, status, "
                "error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (principal.user_id, principal.name, mode, job_id, query, duration_ms, rows, status, error))
            conn.commit()
