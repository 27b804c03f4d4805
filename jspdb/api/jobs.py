"""Asynchronous TAP jobs (UWS 1.1): rows in ``jsp.uws_job``, results in the datastore.

The API creates and changes jobs; a Celery worker (`workers.tasks_tap`)
executes them with `execute_job`. Job ids are 128 random bits, and every
lookup is by (id, owner): a user cannot read, or learn the existence of,
another user's job. Results live under ``<datastore>/tap/<job_id>/`` and are
deleted with their job at its DESTRUCTION time (`purge_expired`).
"""

from __future__ import annotations

import secrets
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from jspdb.api.formats import ResultSet, find_format, write_result
from jspdb.api.limits import get_api_settings
from jspdb.api.service import QueryError, QueryService, QueryTimeout
from jspdb.api.users import ANONYMOUS, Principal

__all__ = ["execute_job", "get_job", "job_xml", "jobs_xml", "new_job", "purge_expired", "quote", "save_result"]

FINAL = ("COMPLETED", "ERROR", "ABORTED", "ARCHIVED")
_UWS = ('xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"')


def new_job(conn: psycopg.Connection, owner: Principal, params: dict, execution_duration: int,
            lifetime_s: int, uploads: dict[str, str] | None = None) -> dict:
    """Insert a PENDING job (the caller commits)."""
    job_id = secrets.token_hex(16)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "INSERT INTO jsp.uws_job (job_id, owner_id, run_id, query, lang, maxrec, response_format, uploads, "
            "execution_duration, destruction, save_as) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, "
            "now() + make_interval(secs => %s), %s) RETURNING *",
            (job_id, owner.user_id, params.get("runid"), params["query"], params.get("lang", "ADQL"),
             params["maxrec"], params["responseformat"], psycopg.types.json.Jsonb(uploads or {}),
             execution_duration, lifetime_s, params.get("save_as")),
        ).fetchone()


def get_job(conn: psycopg.Connection, job_id: str, owner: Principal) -> dict | None:
    """The job ``job_id`` if ``owner`` owns it (anonymous jobs: owner NULL), else None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM jsp.uws_job WHERE job_id = %s AND owner_id IS NOT DISTINCT FROM %s",
            (job_id, owner.user_id)).fetchone()


def _t(v: datetime | None) -> str | None:
    return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if v else None


def _el(name: str, value) -> str:
    if value is None:
        return f'<uws:{name} xsi:nil="true"/>'
    return f"<uws:{name}>{escape(str(value))}</uws:{name}>"


def quote(job: dict) -> str:
    """UWS QUOTE: when the job is expected to end at the latest (creation + EXECUTIONDURATION)."""
    return _t(job["created_at"] + timedelta(seconds=job["execution_duration"])) or ""


def job_xml(job: dict, base: str, owner: Principal) -> str:
    """The UWS 1.1 job document."""
    params = {"query": job["query"], "lang": job["lang"], "maxrec": job["maxrec"],
              "responseformat": job["response_format"], "runid": job["run_id"]}
    ps = "".join(f"<uws:parameter id={quoteattr(k)}>{escape(str(v))}</uws:parameter>"
                 for k, v in params.items() if v is not None)
    results = ""
    if job["phase"] == "COMPLETED":
        href = f"{base}/async/{job['job_id']}/results/result"
        results = f'<uws:result id="result" xlink:href={quoteattr(href)}/>'
    err = ""
    if job["phase"] == "ERROR":
        err = (f'<uws:errorSummary type="fatal" hasDetail="true"><uws:message>{escape(job["error"] or "")}'
               "</uws:message></uws:errorSummary>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:job {_UWS} version="1.1">'
            f"{_el('jobId', job['job_id'])}{_el('runId', job['run_id'])}"
            f"{_el('ownerId', None if owner.anonymous else owner.name)}{_el('phase', job['phase'])}"
            f"{_el('quote', quote(job))}{_el('creationTime', _t(job['created_at']))}"
            f"{_el('startTime', _t(job['started_at']))}{_el('endTime', _t(job['ended_at']))}"
            f"{_el('executionDuration', job['execution_duration'])}{_el('destruction', _t(job['destruction']))}"
            f"<uws:parameters>{ps}</uws:parameters><uws:results>{results}</uws:results>{err}</uws:job>")


def jobs_xml(jobs: list[dict], base: str) -> str:
    """The UWS 1.1 job list."""
    refs = "".join(
        f'<uws:jobref id={quoteattr(j["job_id"])} xlink:href={quoteattr(base + "/async/" + j["job_id"])}>'
        f"{_el('phase', j['phase'])}{_el('runId', j['run_id'])}{_el('creationTime', _t(j['created_at']))}"
        "</uws:jobref>" for j in jobs)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:jobs {_UWS} version="1.1">{refs}</uws:jobs>'


def result_path(datastore: Path, job: dict) -> Path:
    """Where a job's result file lives."""
    fmt = find_format(job["response_format"])
    ext = fmt.extension if fmt else "xml"
    return datastore / "tap" / job["job_id"] / f"result.{ext}"


def purge_expired(conn: psycopg.Connection, datastore: Path) -> int:
    """Delete jobs past their DESTRUCTION time and their result files; returns how many."""
    ids = [r[0] for r in conn.execute(
        "DELETE FROM jsp.uws_job WHERE destruction < now() RETURNING job_id").fetchall()]
    conn.commit()
    for job_id in ids:
        shutil.rmtree(datastore / "tap" / job_id, ignore_errors=True)
    return len(ids)


def _principal(conn: psycopg.Connection, owner_id: int | None) -> Principal:
    if owner_id is None:
        return ANONYMOUS
    with conn.cursor(row_factory=dict_row) as cur:
        u = cur.execute("SELECT * FROM jsp.api_user WHERE user_id = %s", (owner_id,)).fetchone()
    overrides = tuple((k, u[k]) for k in ("max_rows", "max_bytes", "timeout_ms", "max_async_jobs", "rate_per_min")
                      if u[k] is not None)
    return Principal(u["user_id"], u["name"], u["role_name"], u["schema_name"], overrides)


_PG_TYPES = {"short": "smallint", "int": "integer", "long": "bigint", "float": "real", "double": "double precision",
             "boolean": "boolean"}


def save_result(conn: psycopg.Connection, owner: Principal, table: str, result: ResultSet) -> None:
    """Store a result as ``<owner schema>.<table>``, readable by the owner's role only."""
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(
            _PG_TYPES.get(c.datatype, "text") if not c.arraysize or c.datatype == "char" else "double precision[]"
            if c.datatype == "double" else "text"))
        for c in result.columns)
    name = sql.Identifier(owner.schema, table)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(name, cols))
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(name, sql.Literal("Saved TAP result")))
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(name)) as cp:
        for r in result.rows:
            cp.write_row(r)
    conn.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(name))
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(name, sql.Identifier(owner.role)))


def execute_job(service: QueryService, job_id: str, datastore: Path, default_timeout_s: int = 600) -> str:
    """Run a QUEUED job to COMPLETED or ERROR; returns the final phase.

    Idempotent: a job that is not QUEUED (already run, aborted, deleted) is
    left alone, so a redelivered task does nothing.
    """
    with service.pool.connection() as conn:
        with conn.cursor(row_factory=dict_row) as cur:
            job = cur.execute(
                "UPDATE jsp.uws_job SET phase = 'EXECUTING', started_at = now(), backend_pid = NULL "
                "WHERE job_id = %s AND phase = 'QUEUED' RETURNING *", (job_id,)).fetchone()
        conn.commit()
        if job is None:
            row = conn.execute("SELECT phase FROM jsp.uws_job WHERE job_id = %s", (job_id,)).fetchone()
            conn.rollback()
            return row[0] if row else "DELETED"
        owner = _principal(conn, job["owner_id"])
        conn.rollback()

    def started(pid: int) -> None:
        with service.pool.connection() as c:
            c.execute("UPDATE jsp.uws_job SET backend_pid = %s WHERE job_id = %s", (pid, job_id))
            c.commit()

    t0 = time.perf_counter()
    status, error, nrows, nbytes, overflow, path = "COMPLETED", None, None, None, False, None
    uploads = []
    try:
        from jspdb.api.service import Upload

        for name, spec in (job["uploads"] or {}).items():
            uploads.append(Upload(name, [tuple(c) for c in spec["columns"]], [tuple(r) for r in spec["rows"]]))
        result = service.run(job["query"], owner, int(job["maxrec"]), int(job["execution_duration"]) * 1000,
                             uploads=uploads, on_start=started)
        fmt = find_format(job["response_format"])
        data = write_result(result, fmt)
        api = get_api_settings()
        max_bytes = (api.anonymous() if owner.anonymous else api.user()).with_overrides(
            dict(owner.overrides)).max_bytes
        if len(data) > max_bytes:
            raise QueryError(f"result is {len(data)} bytes, above your limit of {max_bytes}: lower MAXREC or "
                             "select fewer columns")
        path = result_path(datastore, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        nrows, nbytes, overflow = len(result.rows), len(data), result.overflow
        if job["save_as"] and not owner.anonymous:
            with service.pool.connection() as conn:
                save_result(conn, owner, job["save_as"], result)
                conn.commit()
            service.forget_catalogs()
    except QueryTimeout as exc:
        status, error = "ERROR", str(exc)
    except Exception as exc:  # every failure ends the job in ERROR with its message
        status, error = "ERROR", str(exc)
    with service.pool.connection() as conn:
        row = conn.execute(
            "UPDATE jsp.uws_job SET phase = %s, ended_at = now(), error = %s, result_rows = %s, result_bytes = %s, "
            "overflow = %s, result_path = %s, backend_pid = NULL WHERE job_id = %s AND phase = 'EXECUTING' "
            "RETURNING phase",
            (status, error, nrows, nbytes, overflow, str(path.relative_to(datastore)) if path else None,
             job_id)).fetchone()
        conn.commit()
    service.log(owner, "async", job["query"], (time.perf_counter() - t0) * 1000, nrows,
                ("OVERFLOW" if overflow else "OK") if status == "COMPLETED" else "ERROR", error, job_id)
    return row[0] if row else "ABORTED"
