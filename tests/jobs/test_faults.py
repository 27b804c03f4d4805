"""Faults on real worker processes and a real broker, with the default broker and with RabbitMQ.

The steps are the fault steps of ``fault_steps.py`` (per image ``fault_work``,
then per tile ``fault_tile``; ``fault_poison`` kills its process). Every
execution of a step is logged outside its transaction (``fault_exec``), so
the tests can count how often a step really started.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import psycopg
import pytest
from jobhelpers import (
    RABBITMQ,
    new_release,
    purge_queue,
    rabbitmq_available,
    set_step_sleep,
    wait_for_jobs,
    worker_env,
)

from jspdb.jobs.plan import plan_run, send_jobs, tiles_with_data

BROKERS = [pytest.param(None, id="postgres-broker"),
           pytest.param(RABBITMQ, id="rabbitmq", marks=pytest.mark.skipif(
               not rabbitmq_available(), reason="RabbitMQ is not running on 127.0.0.1:5672"))]


@pytest.fixture(params=BROKERS)
def run_env(request, jobs_db):
    """A fresh release, its own queue, and the workers' environment on the chosen broker."""
    name = f"f_{uuid.uuid4().hex[:8]}"
    rid = new_release(jobs_db, name, sleep_s=0.3)
    env = worker_env(jobs_db.settings, request.param, f"jspdb-{name}")
    yield name, rid, env
    purge_queue(env)


def _send_from(env):
    """A `send(job_id)` that enqueues on this test's broker and queue, from the test process."""
    from celery import Celery

    from jspdb.config import Settings
    from workers.app import broker_url

    # the broker the workers see in this environment
    app = Celery("jspdb-test-sender", broker=broker_url(Settings(database_url=env["JSP_DATABASE_URL"],
                                                                 broker_url=env.get("JSP_BROKER_URL"))))
    app.conf.task_default_queue = env["JSP_QUEUE"]

    def send(job_id: int) -> None:
        app.send_task("jspdb.jobs.run", args=(int(job_id),), queue=env["JSP_QUEUE"])

    return send, app


def _plan(jobs_db, release: str, first_step: str = "fault_work"):
    with psycopg.connect(jobs_db.dsn) as c:
        tiles = tiles_with_data(c, jobs_db.settings.tile_order)
        plan = plan_run(c, release, tiles, jobs_db.settings.tile_order, first_step=first_step)
        c.commit()
    return plan


def _start_and_send(jobs_db, release: str, env, start_worker):
    """Plan the fault chain, start a worker, send the image jobs; returns the worker."""
    plan = _plan(jobs_db, release)
    send, _ = _send_from(env)
    worker = start_worker(env, concurrency=2)
    with psycopg.connect(jobs_db.dsn) as c:
        send_jobs(c, plan.image_jobs, send)
    return worker


def _wait_finished(dsn: str, rid: int, timeout: float = 120, workers: tuple = ()) -> list[tuple]:
    """Wait until every job of the release is done or failed; on timeout, show the jobs and the workers' logs."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as c:
        while True:
            jobs = c.execute("SELECT job_id, step, state, attempts, error FROM jsp.tile_job WHERE release_id = %s "
                             "ORDER BY job_id", (rid,)).fetchall()
            if jobs and all(j[2] in ("done", "failed") for j in jobs):
                return jobs
            assert time.monotonic() < deadline, (jobs, *(w.log()[-5000:] for w in workers))
            time.sleep(0.2)


def _executions(dsn: str, rid: int) -> dict[tuple[str, int], int]:
    with psycopg.connect(dsn) as c:
        return {(s, u): n for s, u, n in c.execute(
            "SELECT step, unit, count(*) FROM fault_exec WHERE release_id = %s GROUP BY 1, 2", (rid,))}


def _check_results(dsn: str, rid: int, n_images: int) -> None:
    """Every image has its one result row; each tile's sum equals the sum over its images."""
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT count(*) FROM fault_result WHERE release_id = %s", (rid,)).fetchone()[0] == n_images
        bad = c.execute(
            "SELECT t.tile_ipix FROM fault_tile t WHERE t.release_id = %s AND abs(t.total - (SELECT sum(r.value) "
            "FROM fault_result r JOIN jsp.image_tile it USING (image_id) WHERE r.release_id = t.release_id AND "
            "it.tile_ipix = t.tile_ipix)) > 1e-9", (rid,)).fetchall()
        assert not bad


def test_duplicate_delivery_runs_once(jobs_db, run_env, start_worker):
    release, rid, env = run_env
    plan = _plan(jobs_db, release)
    send, app = _send_from(env)
    start_worker(env, concurrency=2)
    with psycopg.connect(jobs_db.dsn) as c:
        send_jobs(c, plan.image_jobs, send)
        send_jobs(c, plan.image_jobs, send)  # every message twice, while the first copies run
    jobs = _wait_finished(jobs_db.dsn, rid)
    assert all(j[2] == "done" and j[3] == 1 for j in jobs), jobs
    execs = _executions(jobs_db.dsn, rid)
    assert len(execs) == len(jobs) and set(execs.values()) == {1}, execs
    _check_results(jobs_db.dsn, rid, jobs_db.n_images)


def test_crash_between_commit_and_send_is_repaired_by_sweep(jobs_db, run_env, start_worker, run_jsp):
    release, rid, env = run_env
    _plan(jobs_db, release)  # rows committed, the process "dies" before sending anything
    start_worker(env, concurrency=2)
    time.sleep(1.0)
    with psycopg.connect(jobs_db.dsn) as c:
        assert {r[0] for r in c.execute("SELECT state FROM jsp.tile_job WHERE release_id = %s", (rid,))} == {"pending"}
    out = run_jsp("run", "--release", release, "--sweep", env=env).stdout
    assert f"re-sent {jobs_db.n_images} jobs" in out  # the image jobs; the tile job waits for them
    jobs = _wait_finished(jobs_db.dsn, rid)
    assert all(j[2] == "done" and j[3] == 1 for j in jobs), jobs
    _check_results(jobs_db.dsn, rid, jobs_db.n_images)


def test_poison_step_fails_after_bounded_retries_and_the_queue_drains(jobs_db, run_env, start_worker, start_beat):
    """A step that kills its process every time ends ``failed`` after exactly 3 executions.

    Run as deployed, with ``celery beat``'s sweep: after a pool process dies,
    Celery normally rejects and requeues the message, but once in a CI run on
    the PostgreSQL broker that redelivery never came (the job stayed
    ``running``); the sweep re-sends a ``running`` job that no session holds a
    lock on, so the loss is repaired either way, and the runner's attempt
    count still bounds the executions.
    """
    release, rid, env = run_env
    env = dict(env, JSP_JOB_SWEEP_INTERVAL_S="3")
    with psycopg.connect(jobs_db.dsn) as c:
        image = c.execute("SELECT min(image_id) FROM jsp.image").fetchone()[0]
        from jspdb.jobs.plan import ensure_job

        poison = ensure_job(c, rid, "fault_poison", image_id=image)
        c.commit()
    plan = _plan(jobs_db, release)
    send, app = _send_from(env)
    w = start_worker(env, concurrency=2)
    start_beat(env)
    with psycopg.connect(jobs_db.dsn) as c:
        send_jobs(c, [poison], send)
        send_jobs(c, plan.image_jobs, send)  # healthy work queued behind it goes on
    jobs = {j[0]: j for j in _wait_finished(jobs_db.dsn, rid, timeout=180, workers=(w,))}
    assert jobs[poison][2] == "failed" and jobs[poison][3] == 3, jobs[poison]
    assert "worker process lost" in jobs[poison][4]
    assert all(j[2] == "done" for k, j in jobs.items() if k != poison)
    assert _executions(jobs_db.dsn, rid)[("fault_poison", image)] == 3
    assert w.proc.poll() is None  # the worker survived its children's deaths


def test_sigterm_finishes_in_flight_and_nothing_finished_is_redelivered(jobs_db, run_env, start_worker):
    release, rid, env = run_env
    set_step_sleep(jobs_db.dsn, 1.0)
    w1 = _start_and_send(jobs_db, release, env, start_worker)
    wait_for_jobs(jobs_db.dsn, rid, "done", 3)
    with psycopg.connect(jobs_db.dsn, autocommit=True) as c:
        running = {r[0] for r in c.execute("SELECT job_id FROM jsp.tile_job WHERE release_id = %s AND "
                                           "state = 'running'", (rid,))}
    w1.proc.send_signal(signal.SIGTERM)  # warm shutdown: in-flight steps finish, the rest goes back
    assert w1.proc.wait(60) == 0, w1.log()
    with psycopg.connect(jobs_db.dsn) as c:
        states = dict(c.execute("SELECT job_id, state FROM jsp.tile_job WHERE release_id = %s", (rid,)).fetchall())
    assert all(states[j] == "done" for j in running), (running, states)  # finished, not abandoned
    assert "running" not in states.values()
    start_worker(env, concurrency=2)
    jobs = _wait_finished(jobs_db.dsn, rid)
    assert all(j[2] == "done" and j[3] == 1 for j in jobs), jobs
    execs = _executions(jobs_db.dsn, rid)
    assert set(execs.values()) == {1}, execs  # nothing ran twice
    _check_results(jobs_db.dsn, rid, jobs_db.n_images)


def test_worker_host_lost_is_repaired_by_the_beat_sweep(jobs_db, run_env, start_worker, start_beat):
    """kill -9 a whole worker (main process and pool) mid-run; `celery beat`'s sweep and another worker finish it."""
    release, rid, env = run_env
    env = dict(env, JSP_JOB_SWEEP_INTERVAL_S="2")
    set_step_sleep(jobs_db.dsn, 1.0)
    w1 = _start_and_send(jobs_db, release, env, start_worker)
    wait_for_jobs(jobs_db.dsn, rid, "running", 2, log=w1.log())
    for pid in [w1.proc.pid, *w1.children()]:  # the whole host goes: consumer and pool, no goodbye
        os.kill(pid, signal.SIGKILL)
    w1.proc.wait(10)
    with psycopg.connect(jobs_db.dsn) as c:
        lost = [r[0] for r in c.execute("SELECT job_id FROM jsp.tile_job WHERE release_id = %s AND state = 'running'",
                                        (rid,))]
    assert lost
    beat_log = start_beat(env)
    w2 = start_worker(env, concurrency=2)
    jobs = {j[0]: j for j in _wait_finished(jobs_db.dsn, rid, timeout=150, workers=(w2,))}
    assert all(j[2] == "done" for j in jobs.values()), jobs
    assert all(jobs[j][3] == 2 for j in lost)  # the killed attempt, then the one that finished
    _check_results(jobs_db.dsn, rid, jobs_db.n_images)
    assert "jspdb.jobs.sweep" in beat_log.read_text()
