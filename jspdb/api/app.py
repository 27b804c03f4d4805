"""The HTTP service: TAP 1.1 (sync, async/UWS 1.1), VOSI, SIA v2, at ``/tap`` and ``/sia``.

`create_app` builds a FastAPI application around one `QueryService`
(connection pool, TAP_SCHEMA cache). Handlers are plain functions run in
FastAPI's thread pool: a slow query holds one thread and one connection
while the others keep serving.
"""

from __future__ import annotations

import io
import json
import time
from contextlib import asynccontextmanager
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from psycopg.rows import dict_row
from starlette.concurrency import run_in_threadpool

from jspdb.adql import AdqlError
from jspdb.api import jobs as uws
from jspdb.api.formats import error_votable, find_format, write_result
from jspdb.api.limits import ApiSettings, Limits, RateLimiter, get_api_settings
from jspdb.api.service import QueryError, QueryService, QueryTimeout, Upload, upload_from_table
from jspdb.api.users import ANONYMOUS, Principal, authenticate
from jspdb.config import Settings, get_settings
from jspdb.db.engine import database_url, libpq_dsn

__all__ = ["create_app"]

VOTABLE = "application/x-votable+xml"
XML = "text/xml"
_MAX_UPLOAD_BYTES = 20_000_000


class ApiError(Exception):
    """An error answered as a VOTable error document with an HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _votable_error(message: str, status: int = 400) -> Response:
    return Response(error_votable(message), status_code=status, media_type=VOTABLE)


class _State:
    def __init__(self, settings: Settings, api: ApiSettings) -> None:
        self.settings = settings
        self.api = api
        self.service = QueryService(libpq_dsn(database_url(settings)), pool_max=api.pool_max,
                                    catalog_ttl_s=api.catalog_ttl_s)
        self.rate = RateLimiter()
        self.datastore = Path(settings.datastore)

    def limits(self, p: Principal) -> Limits:
        base = self.api.anonymous() if p.anonymous else self.api.user()
        return base.with_overrides(dict(p.overrides))


async def _params(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """Request parameters (names lower-cased; GET query and POST form) and uploaded files."""
    params = {k.lower(): v for k, v in request.query_params.items()}
    files: dict[str, bytes] = {}
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if "form" in ctype:
            form = await request.form()
            for k, v in form.multi_items():
                if hasattr(v, "read"):
                    data = await v.read()
                    if len(data) > _MAX_UPLOAD_BYTES:
                        raise ApiError(f"upload {k} is larger than {_MAX_UPLOAD_BYTES} bytes", 413)
                    files[k] = data
                else:
                    params[k.lower()] = str(v)
    return params, files


def _parse_uploads(spec: str | None, files: dict[str, bytes]) -> list[Upload]:
    """TAP UPLOAD=name,param:part[;name2,param:part2]: VOTable or CSV tables."""
    if not spec:
        return []
    from astropy.table import Table

    out = []
    for item in spec.split(";"):
        name, _, src = item.partition(",")
        name, src = name.strip(), src.strip()
        if not src.startswith("param:"):
            raise ApiError(f"upload {name!r}: only inline uploads (param:NAME) are accepted, got {src!r}")
        data = files.get(src[len("param:"):])
        if data is None:
            raise ApiError(f"upload {name!r}: no request part named {src[len('param:'):]!r}")
        head = data[:200].lstrip()
        try:
            if head.startswith(b"<"):
                from astropy.io.votable import parse_single_table

                table = parse_single_table(io.BytesIO(data)).to_table(use_names_over_ids=True)
            else:
                table = Table.read(data.decode("utf-8"), format="ascii.csv")
        except Exception as exc:
            raise ApiError(f"upload {name!r} is neither a VOTable nor a CSV table: {exc}") from exc
        try:
            out.append(upload_from_table(name, table))
        except AdqlError as exc:
            raise ApiError(str(exc)) from exc
    return out


def _maxrec(params: dict[str, str], limits: Limits) -> int:
    raw = params.get("maxrec")
    if raw is None or raw == "":
        return limits.default_maxrec
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(f"MAXREC must be a whole number, got {raw!r}") from exc
    if value < 0:
        raise ApiError("MAXREC must not be negative")
    return min(value, limits.max_rows)


def _base(request: Request, api: ApiSettings) -> str:
    return (api.base_url or str(request.base_url)).rstrip("/") + "/tap"


def create_app(settings: Settings | None = None, api: ApiSettings | None = None) -> FastAPI:
    """Build the application (TAP at ``/tap``, SIA v2 at ``/sia``)."""
    settings = settings or get_settings()
    api = api or get_api_settings()
    holder: dict[str, _State] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        holder["s"] = _State(settings, api)
        with holder["s"].service.pool.connection() as conn:
            uws.purge_expired(conn, holder["s"].datastore)
        from workers.app import ensure_broker_ready

        await run_in_threadpool(ensure_broker_ready)
        try:
            yield
        finally:
            holder["s"].service.close()

    app = FastAPI(title="jspdb TAP", lifespan=lifespan, docs_url=None, redoc_url=None)

    def state() -> _State:
        return holder["s"]

    def principal(request: Request) -> Principal:
        auth = request.headers.get("authorization", "")
        if not auth:
            return ANONYMOUS
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError("Authorization must be 'Bearer <token>'", 401)
        with state().service.pool.connection() as conn:
            p = authenticate(conn, token.strip())
            conn.rollback()
        if p is None:
            raise ApiError("unknown or revoked token", 401)
        return p

    def check_rate(request: Request, p: Principal) -> None:
        key = p.name if not p.anonymous else f"anon:{request.client.host if request.client else '?'}"
        if not state().rate.allow(key, state().limits(p).rate_per_min):
            raise ApiError("too many requests: slow down (see the rate limit in /tap/capabilities)", 429)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": 'Bearer realm="jspdb"'}
        r = _votable_error(str(exc), exc.status)
        if headers:
            r.headers.update(headers)
        return r

    # -- sync ------------------------------------------------------------------

    @app.api_route("/tap/sync", methods=["GET", "POST"])
    async def sync(request: Request) -> Response:
        params, files = await _params(request)
        return await run_in_threadpool(_sync, request, params, files)

    def _sync(request: Request, params: dict[str, str], files: dict[str, bytes]) -> Response:
        p = principal(request)
        check_rate(request, p)
        st = state()
        limits = st.limits(p)
        if params.get("request", "doQuery").lower() != "doquery":
            raise ApiError(f"REQUEST={params.get('request')!r} is not supported (use doQuery)")
        lang = params.get("lang", "ADQL").upper()
        if lang not in ("ADQL", "ADQL-2.0", "ADQL-2.1"):
            raise ApiError(f"LANG={lang!r} is not supported (use ADQL)")
        query = params.get("query")
        if not query:
            raise ApiError("QUERY is missing")
        fmt = find_format(params.get("responseformat") or params.get("format"))
        if fmt is None:
            raise ApiError(f"RESPONSEFORMAT={params.get('responseformat')!r} is not supported")
        maxrec = _maxrec(params, limits)
        uploads = _parse_uploads(params.get("upload"), files)
        t0 = time.perf_counter()
        try:
            result = st.service.run(query, p, maxrec, limits.timeout_ms, uploads=uploads)
            body = write_result(result, fmt)
            if len(body) > limits.max_bytes:
                raise QueryError(f"result is {len(body)} bytes, above your limit of {limits.max_bytes}: "
                                 "lower MAXREC or select fewer columns")
        except (AdqlError, QueryError) as exc:  # QueryTimeout is a QueryError
            status = ("REJECTED" if isinstance(exc, AdqlError) else
                      "TIMEOUT" if isinstance(exc, QueryTimeout) else "ERROR")
            st.service.log(p, "sync", query, (time.perf_counter() - t0) * 1000, None, status, str(exc))
            return _votable_error(str(exc), 400)
        st.service.log(p, "sync", query, (time.perf_counter() - t0) * 1000, len(result.rows),
                       "OVERFLOW" if result.overflow else "OK")
        media = fmt.mime.split(";")[0]
        return Response(body, media_type=media)

    # -- async (UWS) -------------------------------------------------------------

    def _job_or_404(conn: psycopg.Connection, job_id: str, p: Principal) -> dict:
        job = uws.get_job(conn, job_id, p)
        if job is None:
            raise ApiError(f"no job {job_id!r}", 404)
        return job

    def _start(conn: psycopg.Connection, job: dict, p: Principal) -> None:
        if job["phase"] not in ("PENDING",):
            return
        limits = state().limits(p)
        # Serialise RUN requests of one owner, so two cannot both pass the count.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('jsp-uws-owner:' || %s))",
                     (str(p.user_id),))
        running = conn.execute(
            "SELECT count(*) FROM jsp.uws_job WHERE owner_id IS NOT DISTINCT FROM %s "
            "AND phase IN ('QUEUED', 'EXECUTING')", (p.user_id,)).fetchone()[0]
        if running >= limits.max_async_jobs:
            conn.rollback()
            raise ApiError(f"you already have {running} jobs queued or executing (limit "
                           f"{limits.max_async_jobs}); wait for one to finish", 429)
        conn.execute("UPDATE jsp.uws_job SET phase = 'QUEUED' WHERE job_id = %s", (job["job_id"],))
        conn.commit()
        from workers.tasks_tap import submit

        task_id = submit(job["job_id"])
        conn.execute("UPDATE jsp.uws_job SET task_id = %s WHERE job_id = %s", (task_id, job["job_id"]))
        conn.commit()

    @app.api_route("/tap/async", methods=["GET", "POST"])
    async def async_list(request: Request) -> Response:
        params, files = await _params(request)
        return await run_in_threadpool(_async_list, request, params, files)

    def _async_list(request: Request, params: dict[str, str], files: dict[str, bytes]) -> Response:
        p = principal(request)
        check_rate(request, p)
        st = state()
        base = _base(request, st.api)
        with st.service.pool.connection() as conn:
            if request.method == "GET":
                uws.purge_expired(conn, st.datastore)
                phases = [v.upper() for k, v in request.query_params.multi_items() if k.lower() == "phase"]
                with conn.cursor(row_factory=dict_row) as cur:
                    jobs = cur.execute(
                        "SELECT * FROM jsp.uws_job WHERE owner_id IS NOT DISTINCT FROM %s AND (%s::text[] IS NULL "
                        "OR phase = ANY(%s::text[])) AND phase <> 'ARCHIVED' ORDER BY created_at DESC LIMIT 1000",
                        (p.user_id, phases or None, phases or None)).fetchall()
                conn.rollback()
                if p.anonymous:
                    jobs = []  # anonymous jobs are reachable by their id only
                return Response(uws.jobs_xml(jobs, base), media_type=XML)
            limits = st.limits(p)
            query = params.get("query")
            if not query:
                raise ApiError("QUERY is missing")
            fmt = find_format(params.get("responseformat") or params.get("format"))
            if fmt is None:
                raise ApiError(f"RESPONSEFORMAT={params.get('responseformat')!r} is not supported")
            save_as = params.get("save_as") or params.get("jsp_save_as")
            if save_as and (p.anonymous or not save_as.isidentifier() or not save_as.islower()):
                raise ApiError("SAVE_AS needs a token and a lower-case table name")
            uploads = _parse_uploads(params.get("upload"), files)
            duration = min(int(params.get("executionduration") or limits.async_timeout_s), limits.async_timeout_s)
            spec = {u.name: {"columns": u.columns, "rows": u.rows} for u in uploads}
            job = uws.new_job(conn, p, {"query": query, "lang": params.get("lang", "ADQL"),
                                        "maxrec": _maxrec(params, limits), "responseformat": fmt.name,
                                        "runid": params.get("runid"), "save_as": save_as},
                              duration, st.api.job_lifetime_s, spec)
            conn.commit()
            if params.get("phase", "").upper() == "RUN":
                _start(conn, job, p)
        return RedirectResponse(f"{base}/async/{job['job_id']}", status_code=303)

    @app.get("/tap/async/{job_id}")
    def job_get(request: Request, job_id: str) -> Response:
        p = principal(request)
        st = state()
        wait = request.query_params.get("WAIT") or request.query_params.get("wait")
        deadline = time.monotonic() + min(float(wait), 60.0) if wait else 0.0
        start_phase = (request.query_params.get("PHASE") or request.query_params.get("phase") or "").upper()
        with st.service.pool.connection() as conn:
            job = _job_or_404(conn, job_id, p)
            conn.rollback()
            while wait and job["phase"] in ("PENDING", "QUEUED", "EXECUTING") and time.monotonic() < deadline and (
                    not start_phase or job["phase"] == start_phase):
                time.sleep(0.1)
                job = _job_or_404(conn, job_id, p)
                conn.rollback()
        return Response(uws.job_xml(job, _base(request, st.api), p), media_type=XML)

    @app.delete("/tap/async/{job_id}")
    def job_delete(request: Request, job_id: str) -> Response:
        return _delete(request, job_id)

    def _delete(request: Request, job_id: str) -> Response:
        p = principal(request)
        st = state()
        with st.service.pool.connection() as conn:
            job = _job_or_404(conn, job_id, p)
            if job["backend_pid"]:
                conn.execute("SELECT pg_cancel_backend(%s)", (job["backend_pid"],))
            conn.execute("DELETE FROM jsp.uws_job WHERE job_id = %s", (job_id,))
            conn.commit()
        import shutil

        shutil.rmtree(st.datastore / "tap" / job_id, ignore_errors=True)
        return RedirectResponse(f"{_base(request, st.api)}/async", status_code=303)

    @app.post("/tap/async/{job_id}")
    async def job_post(request: Request, job_id: str) -> Response:
        params, _ = await _params(request)
        if params.get("action", "").upper() == "DELETE":
            return await run_in_threadpool(_delete, request, job_id)
        raise ApiError("POST to a job takes ACTION=DELETE")

    @app.get("/tap/async/{job_id}/{attr}")
    def job_attr(request: Request, job_id: str, attr: str) -> Response:
        p = principal(request)
        st = state()
        with st.service.pool.connection() as conn:
            job = _job_or_404(conn, job_id, p)
            conn.rollback()
        xml = uws.job_xml(job, _base(request, st.api), p)
        simple = {"phase": job["phase"], "executionduration": str(job["execution_duration"]),
                  "destruction": uws._t(job["destruction"]), "owner": "" if p.anonymous else p.name,
                  "quote": uws.quote(job)}
        if attr.lower() in simple:
            return PlainTextResponse(simple[attr.lower()] or "")
        if attr == "error":
            if job["phase"] != "ERROR":
                raise ApiError("the job has no error", 404)
            return _votable_error(job["error"] or "error", 200)
        if attr in ("parameters", "results"):
            start = xml.index(f"<uws:{attr}>")
            end = xml.index(f"</uws:{attr}>") + len(f"</uws:{attr}>")
            ns = xml[xml.index("<uws:job ") + 9:xml.index(' version="1.1">')]
            return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + xml[start:end].replace(
                f"<uws:{attr}>", f"<uws:{attr} {ns}>", 1), media_type=XML)
        raise ApiError(f"no job attribute {attr!r}", 404)

    @app.post("/tap/async/{job_id}/{attr}")
    async def job_attr_post(request: Request, job_id: str, attr: str) -> Response:
        params, _ = await _params(request)
        return await run_in_threadpool(_job_attr_post, request, job_id, attr.lower(), params)

    def _job_attr_post(request: Request, job_id: str, attr: str, params: dict[str, str]) -> Response:
        p = principal(request)
        check_rate(request, p)
        st = state()
        base = _base(request, st.api)
        with st.service.pool.connection() as conn:
            job = _job_or_404(conn, job_id, p)
            if attr == "phase":
                phase = params.get("phase", "").upper()
                if phase == "RUN":
                    _start(conn, job, p)
                elif phase == "ABORT":
                    if job["phase"] not in uws.FINAL:
                        conn.execute("UPDATE jsp.uws_job SET phase = 'ABORTED', ended_at = now() "
                                     "WHERE job_id = %s", (job_id,))
                        if job["backend_pid"]:
                            conn.execute("SELECT pg_cancel_backend(%s)", (job["backend_pid"],))
                        conn.commit()
                else:
                    raise ApiError("PHASE must be RUN or ABORT")
            elif attr == "executionduration":
                if job["phase"] != "PENDING":
                    raise ApiError("EXECUTIONDURATION can change only while the job is PENDING", 409)
                limit = st.limits(p).async_timeout_s
                value = min(max(int(params.get("executionduration", limit)), 1), limit)
                conn.execute("UPDATE jsp.uws_job SET execution_duration = %s WHERE job_id = %s", (value, job_id))
                conn.commit()
            elif attr == "destruction":
                from datetime import datetime

                try:
                    when = datetime.fromisoformat(params.get("destruction", "").replace("Z", "+00:00"))
                except ValueError as exc:
                    raise ApiError("DESTRUCTION must be an ISO 8601 time") from exc
                # A job may be kept at most the service's job lifetime from its creation.
                conn.execute("UPDATE jsp.uws_job SET destruction = LEAST(%s, created_at + make_interval(secs => %s)) "
                             "WHERE job_id = %s", (when, st.api.job_lifetime_s, job_id))
                conn.commit()
            elif attr == "parameters":
                if job["phase"] != "PENDING":
                    raise ApiError("parameters can change only while the job is PENDING", 409)
                if "query" in params:
                    conn.execute("UPDATE jsp.uws_job SET query = %s WHERE job_id = %s", (params["query"], job_id))
                conn.commit()
            else:
                raise ApiError(f"cannot change {attr!r}", 404)
        return RedirectResponse(f"{base}/async/{job_id}", status_code=303)

    @app.get("/tap/async/{job_id}/results/result")
    def job_result(request: Request, job_id: str) -> Response:
        p = principal(request)
        st = state()
        with st.service.pool.connection() as conn:
            job = _job_or_404(conn, job_id, p)
            conn.rollback()
        if job["phase"] != "COMPLETED" or not job["result_path"]:
            raise ApiError(f"job {job_id} has no result (phase {job['phase']})", 404)
        fmt = find_format(job["response_format"])
        return FileResponse(st.datastore / job["result_path"], media_type=fmt.mime.split(";")[0] if fmt else VOTABLE)

    # -- VOSI --------------------------------------------------------------------

    @app.get("/tap/availability")
    def availability() -> Response:
        ok, note = True, "service is accepting queries"
        try:
            with state().service.pool.connection(timeout=5) as conn:
                conn.execute("SELECT 1")
                conn.rollback()
        except Exception as exc:
            ok, note = False, f"database unavailable: {exc}"
        return Response('<?xml version="1.0" encoding="UTF-8"?>\n'
                        '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
                        f"<vosi:available>{'true' if ok else 'false'}</vosi:available>"
                        f"<vosi:note>{escape(note)}</vosi:note></vosi:availability>", media_type=XML)

    @app.get("/tap/capabilities")
    def capabilities(request: Request) -> Response:
        from jspdb.api.vosi import capabilities_xml

        return Response(capabilities_xml(_base(request, state().api), state().api), media_type=XML)

    @app.get("/tap/tables")
    def tables(request: Request) -> Response:
        from jspdb.api.vosi import tables_xml

        p = principal(request)
        return Response(tables_xml(state().service, p), media_type=XML)

    @app.get("/tap/tables/{name}")
    def table(request: Request, name: str) -> Response:
        from jspdb.api.vosi import tables_xml

        p = principal(request)
        xml = tables_xml(state().service, p, only=name.lower())
        if xml is None:
            raise ApiError(f"no table {name!r}", 404)
        return Response(xml, media_type=XML)

    @app.get("/tap")
    def root(request: Request) -> Response:
        base = _base(request, state().api)
        links = "".join(f'<li><a href={quoteattr(base + "/" + x)}>{x}</a></li>'
                        for x in ("sync", "async", "capabilities", "availability", "tables"))
        return Response(f"<html><body><h1>jspdb TAP</h1><ul>{links}</ul></body></html>", media_type="text/html")

    # -- private workspace -------------------------------------------------------

    def _owner(request: Request) -> Principal:
        p = principal(request)
        if p.anonymous:
            raise ApiError("a workspace needs a token (Authorization: Bearer ...)", 401)
        check_rate(request, p)
        return p

    @app.post("/tap/workspace/tables")
    async def workspace_put(request: Request) -> Response:
        params, files = await _params(request)
        return await run_in_threadpool(_workspace_put, request, params, files)

    def _workspace_put(request: Request, params: dict[str, str], files: dict[str, bytes]) -> Response:
        from jspdb.api.workspace import store_table

        p = _owner(request)
        name = params.get("table", "")
        if not files:
            raise ApiError("send the table as a file part (VOTable or CSV)")
        part = next(iter(files))
        (upload,) = _parse_uploads(f"{name or 'x'},param:{part}", files)
        st = state()
        with st.service.pool.connection() as conn:
            try:
                n = store_table(conn, p, name, upload, replace=params.get("replace", "").lower() == "true")
            except FileExistsError as exc:
                conn.rollback()
                raise ApiError(str(exc), 409) from exc
            except ValueError as exc:
                conn.rollback()
                raise ApiError(str(exc)) from exc
            conn.commit()
        st.service.forget_catalogs()
        return Response(json.dumps({"table": f"{p.schema}.{name}", "rows": n}), status_code=201,
                        media_type="application/json")

    @app.get("/tap/workspace/tables")
    def workspace_list(request: Request) -> Response:
        from jspdb.api.workspace import list_tables

        p = _owner(request)
        with state().service.pool.connection() as conn:
            tables = list_tables(conn, p)
            conn.rollback()
        return Response(json.dumps(tables), media_type="application/json")

    @app.delete("/tap/workspace/tables/{name}")
    def workspace_drop(request: Request, name: str) -> Response:
        from jspdb.api.workspace import drop_table

        p = _owner(request)
        st = state()
        with st.service.pool.connection() as conn:
            found = drop_table(conn, p, name)
            conn.commit()
        if not found:
            raise ApiError(f"no table {name!r} in your workspace", 404)
        st.service.forget_catalogs()
        return Response(status_code=204)

    # -- SIA v2 ------------------------------------------------------------------

    @app.api_route("/sia/query", methods=["GET", "POST"])
    async def sia(request: Request) -> Response:
        params, _ = await _params(request)
        multi: dict[str, list[str]] = {}
        for k, v in request.query_params.multi_items():
            multi.setdefault(k.upper(), []).append(v)
        for k, v in params.items():
            multi.setdefault(k.upper(), [v]) if k.upper() not in multi else None
        return await run_in_threadpool(_sia, request, multi)

    def _sia(request: Request, multi: dict[str, list[str]]) -> Response:
        from jspdb.api.sia import sia_query

        p = principal(request)
        check_rate(request, p)
        st = state()
        limits = st.limits(p)
        t0 = time.perf_counter()
        try:
            maxrec = _maxrec({"maxrec": (multi.get("MAXREC") or [""])[0]}, limits)
            fmt = find_format((multi.get("RESPONSEFORMAT") or [None])[0])
            if fmt is None:
                raise ApiError("RESPONSEFORMAT is not supported")
            result = sia_query(st.service, p, multi, maxrec, limits.timeout_ms)
        except (AdqlError, QueryError) as exc:
            st.service.log(p, "sia", str(multi), (time.perf_counter() - t0) * 1000, None, "ERROR", str(exc))
            return _votable_error(str(exc), 400)
        st.service.log(p, "sia", str(multi), (time.perf_counter() - t0) * 1000, len(result.rows),
                       "OVERFLOW" if result.overflow else "OK")
        return Response(write_result(result, fmt), media_type=fmt.mime.split(";")[0])

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory jspdb.api.app:app_from_env``."""
    return create_app()
