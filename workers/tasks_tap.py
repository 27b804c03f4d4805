"""Celery tasks of the TAP service: run one async (UWS) job.

The task owns nothing but the job id: the job row in PostgreSQL holds the
query, limits and owner, and `jspdb.api.jobs.execute_job` moves it from
QUEUED to COMPLETED or ERROR exactly once (a redelivered task finds the job
no longer QUEUED and does nothing).
"""

from __future__ import annotations

import threading

from jspdb.api.jobs import execute_job
from jspdb.api.limits import get_api_settings
from jspdb.api.service import QueryService
from jspdb.config import get_settings
from jspdb.db.engine import database_url, libpq_dsn
from workers.app import app

__all__ = ["purge_expired_jobs", "run_tap_job", "submit"]

_service: QueryService | None = None
_lock = threading.Lock()


def _get_service() -> QueryService:
    global _service
    with _lock:
        if _service is None:
            _service = QueryService(libpq_dsn(database_url(get_settings())), pool_max=4,
                                    catalog_ttl_s=get_api_settings().catalog_ttl_s)
        return _service


@app.task(name="jspdb.tap.run_job", acks_late=True, max_retries=0)
def run_tap_job(job_id: str) -> str:
    """Execute async TAP job ``job_id``; returns its final phase."""
    return execute_job(_get_service(), job_id, get_settings().datastore)


@app.task(name="jspdb.tap.purge_expired")
def purge_expired_jobs() -> int:
    """Delete async jobs past their DESTRUCTION time, with their results (run by celery beat)."""
    from jspdb.api.jobs import purge_expired

    with _get_service().pool.connection() as conn:
        return purge_expired(conn, get_settings().datastore)


def submit(job_id: str) -> str:
    """Queue ``job_id`` for a worker; returns the Celery task id."""
    return run_tap_job.apply_async(args=[job_id]).id
