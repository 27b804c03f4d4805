"""Run one job row exactly once, whatever the broker does.

1. A session advisory lock keyed on the job id: a second delivery of the same
   job while the first runs finds the lock taken and returns (``busy``).
2. If the job is ``done`` and its input fingerprint is unchanged, return
   (``skipped``): redelivery after success does no work.
3. A job found ``running`` while we hold its lock was left by a worker
   process that died mid-step (its session, and so its lock, is gone). That
   attempt counts: once attempts reach the bound the job ends ``failed``
   instead of crashing the next worker too (a poison step).
4. A tile step whose image jobs have not all finished returns ``waiting``;
   the last image job to finish sends it (`jspdb.jobs.plan.ready_tile_jobs`).
5. Mark ``running`` (attempts + 1, worker, start time) and commit, so
   operators see it; then run the step and write its results *and* the job's
   ``done`` state in one transaction. A worker killed in between leaves the
   row ``running`` with no lock held; the redelivered task takes over.
6. On error: roll back the step, record the error; ``failed`` once attempts
   reach the bound (or at once for a `ValueError`: bad input does not get
   better by retrying), else back to ``pending`` and raise for a retry.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg.rows import dict_row

from jspdb.jobs.steps import Unit, get_step

__all__ = ["LOCK_CLASS", "JobOutcome", "RetryableJobError", "run_job"]

#: High 32 bits of the advisory-lock key of tile jobs (low bits: job id).
LOCK_CLASS = 0x6A6F62  # "job"


class RetryableJobError(Exception):
    """The step failed and may succeed on another attempt."""


@dataclass
class JobOutcome:
    """What one delivery of a job did.

    ``outcome`` is one of done, skipped, busy, waiting, failed, missing;
    ``next_job_ids`` are jobs that became ready and must now be sent.
    """

    job_id: int
    outcome: str
    next_job_ids: list[int] = field(default_factory=list)
    detail: str = ""
    step_s: float = 0.0


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(dsn: str, job_id: int, max_attempts: int = 3, send: Callable[[int], None] | None = None) -> JobOutcome:
    """Run job ``job_id`` (see the module docstring). Raises `RetryableJobError` to ask for a retry.

    ``send(job_id)`` enqueues the jobs that follow (after this job's commit);
    without it they are only listed in the outcome.
    """
    with psycopg.connect(dsn, autocommit=True, application_name="jspdb-job") as conn:
        key = (LOCK_CLASS << 32) | int(job_id)
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            return JobOutcome(job_id, "busy", detail="another worker holds this job")
        try:
            out = _run_locked(conn, job_id, max_attempts)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        if out.outcome in ("done", "skipped", "failed"):
            from jspdb.jobs.plan import next_jobs, send_jobs

            # After the commit: the last image job of a tile to finish sees all the others finished.
            out.next_job_ids = next_jobs(conn, job_id)
            if send is not None and out.next_job_ids:
                send_jobs(conn, out.next_job_ids, send)
        return out


def _jsonable(obj):
    """A step's summary as strict JSON: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _fail(conn: psycopg.Connection, job_id: int, error: str, duration: float | None = None) -> None:
    conn.execute("UPDATE jsp.tile_job SET state = 'failed', error = %s, finished_at = now(), "
                 "duration_s = coalesce(%s, duration_s) WHERE job_id = %s", (error, duration, job_id))


def _run_locked(conn: psycopg.Connection, job_id: int, max_attempts: int) -> JobOutcome:
    with conn.cursor(row_factory=dict_row) as cur:
        job = cur.execute(
            "SELECT j.*, r.name AS release FROM jsp.tile_job j JOIN jsp.release r USING (release_id) "
            "WHERE job_id = %s", (job_id,)).fetchone()
    if job is None:
        return JobOutcome(job_id, "missing", detail="no such job (release deleted?)")
    if job["state"] == "failed" and job["attempts"] >= max_attempts:
        return JobOutcome(job_id, "failed", detail="already failed for good")
    if job["state"] == "running" and job["attempts"] >= max_attempts:
        err = (f"worker process lost during the step on each of {job['attempts']} attempts "
               f"(last worker {job['worker']}); giving up")
        _fail(conn, job_id, err)
        return JobOutcome(job_id, "failed", detail=err)
    step = get_step(job["step"])
    unit = Unit(release_id=job["release_id"], release=job["release"], image_id=job["image_id"],
                tile_order=job["tile_order"], tile_ipix=job["tile_ipix"])
    if step.scope == "tile":
        from jspdb.jobs.plan import unfinished_inputs

        if unfinished_inputs(conn, job_id):
            return JobOutcome(job_id, "waiting", detail="image jobs of the tile still running")
    fp = step.fingerprint(conn, unit)
    if job["state"] == "done" and job["input_fingerprint"] == fp:
        return JobOutcome(job_id, "skipped", detail="inputs unchanged since the last success")
    conn.execute("UPDATE jsp.tile_job SET state = 'running', attempts = attempts + 1, worker = %s, "
                 "started_at = now(), finished_at = NULL, error = NULL WHERE job_id = %s",
                 (_worker_name(), job_id))
    t0 = time.perf_counter()
    try:
        with conn.transaction():
            # Results and state commit together or not at all.
            conn.execute("SET LOCAL application_name = 'jspdb-step'")
            summary = step.run(conn, unit) or {}
            step_s = time.perf_counter() - t0
            conn.execute("UPDATE jsp.tile_job SET state = 'done', input_fingerprint = %s, finished_at = now(), "
                         "duration_s = %s, result = %s WHERE job_id = %s",
                         (fp, step_s, json.dumps(_jsonable(summary), allow_nan=False), job_id))
    except Exception as exc:  # any failure of a step is recorded on its job
        err = f"{type(exc).__name__}: {exc}"
        attempts = job["attempts"] + 1  # this attempt, counted when the job was marked running
        final = attempts >= max_attempts or isinstance(exc, ValueError)
        full = err + "\n" + traceback.format_exc(limit=3)
        if final:
            _fail(conn, job_id, full, time.perf_counter() - t0)
            return JobOutcome(job_id, "failed", detail=err)
        conn.execute("UPDATE jsp.tile_job SET state = 'pending', error = %s, finished_at = now(), duration_s = %s "
                     "WHERE job_id = %s", (full, time.perf_counter() - t0, job_id))
        raise RetryableJobError(err) from exc
    return JobOutcome(job_id, "done", step_s=step_s)
