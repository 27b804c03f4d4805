"""Celery task of the tile/image jobs: run one job row (`jspdb.jobs.runner`).

Reliability settings as trusted deployments use them: late acknowledgement,
requeue when the worker process is lost, bounded retries with exponential
backoff, soft and hard time limits (``JSP_JOB_*``). The jobs that follow
(the image's next step, or a tile job whose images have all finished) are
sent only after the job's results are committed.
"""

from __future__ import annotations

import psycopg

from jspdb.config import get_settings
from jspdb.db.engine import database_url, libpq_dsn
from jspdb.jobs.runner import RetryableJobError, run_job
from workers.app import app

__all__ = ["run_job_task", "send", "sweep_task"]

_settings = get_settings()


@app.task(name="jspdb.jobs.run", bind=True, acks_late=True, reject_on_worker_lost=True,
          autoretry_for=(RetryableJobError,), retry_backoff=2, retry_backoff_max=60, retry_jitter=False,
          max_retries=max(_settings.job_max_attempts - 1, 0),
          soft_time_limit=_settings.job_soft_time_limit_s, time_limit=_settings.job_time_limit_s)
def run_job_task(self, job_id: int) -> str:
    """Run job ``job_id``; returns its outcome (done, skipped, busy, waiting, failed, missing)."""
    settings = get_settings()
    try:
        return run_job(libpq_dsn(database_url(settings)), job_id, max_attempts=settings.job_max_attempts,
                       send=send).outcome
    except psycopg.OperationalError as exc:
        # The database went away (restart, failover). Try again later: the job row says what is left.
        # With the PostgreSQL broker this retry cannot be published either; `jsp run --wait` and
        # `jsp run --sweep` then find the job orphaned and send it again.
        raise self.retry(exc=exc, countdown=min(5 * 2 ** self.request.retries, 60), max_retries=20) from exc


def send(job_id: int) -> None:
    """Enqueue job ``job_id`` (call only after its row is committed)."""
    run_job_task.delay(int(job_id))


@app.task(name="jspdb.jobs.sweep", ignore_result=True)
def sweep_task() -> int:
    """Re-send what crashes lost, for every release with unfinished jobs (scheduled by celery beat).

    Returns the number of jobs sent. See `jspdb.jobs.plan.sweep`.
    """
    from jspdb.db.engine import connect
    from jspdb.jobs.plan import sweep

    settings = get_settings()
    with connect(settings) as conn:
        releases = [r[0] for r in conn.execute(
            "SELECT DISTINCT r.name FROM jsp.tile_job j JOIN jsp.release r USING (release_id) "
            "WHERE j.state IN ('pending', 'queued', 'running') ORDER BY 1")]
        return sum(sweep(conn, name, send, stale_after_s=settings.job_stale_after_s) for name in releases)
