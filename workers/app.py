"""The Celery application of jspdb.

Broker: ``settings.broker_url`` (RabbitMQ or Redis for fleets); by default
kombu's SQLAlchemy transport on the warehouse database itself, so the local
default needs nothing but PostgreSQL. No result backend: job state lives in
PostgreSQL (``jsp.uws_job``, ``jsp.tile_job``).

Task settings follow the architecture: ``acks_late`` (a task whose worker
dies is redelivered; task bodies are idempotent), prefetch 1 (a long TAP job
does not hold short ones hostage in a worker's buffer).
"""

from __future__ import annotations

import gc
import sys

from celery import Celery
from celery.signals import worker_init, worker_process_init

from jspdb.config import Settings, get_settings
from jspdb.db.engine import database_url, libpq_dsn

__all__ = ["app", "broker_url", "ensure_broker_ready", "worker_argv"]

#: pg_advisory_lock key serialising the creation of kombu's tables.
BROKER_SETUP_LOCK_KEY = 0x6A7370_6B6F  # "jspko"


def worker_argv(concurrency: int = 2, loglevel: str = "warning", *extra: str, queue: str | None = None) -> list[str]:
    """Command line of a fleet worker (``jsp worker``, the demo, the benchmark): prefork, fair, prefetch 1.

    ``queue`` defaults to ``settings.queue``; ``extra`` arguments are appended.
    """
    return [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-c", str(concurrency), "-l", loglevel,
            "-Q", queue or get_settings().queue, "-O", "fair", "--prefetch-multiplier", "1", *extra]


def broker_url(settings: Settings | None = None) -> str:
    """The configured broker, or the SQLAlchemy transport on the database."""
    settings = settings or get_settings()
    if settings.broker_url:
        return settings.broker_url
    url = database_url(settings).set(drivername="postgresql+psycopg")
    return "sqla+" + url.render_as_string(hide_password=False)


def _tune_sqla_transport() -> None:
    """Poll the SQLAlchemy transport's table every 0.2 s (kombu's default is 1 s); one thread per session.

    The transport passes its options to ``create_engine``, so the interval is
    set on the transport class rather than in ``broker_transport_options``.

    A channel's SQLAlchemy session is not thread-safe, but two threads of a
    worker use it: the main loop polls (``_get``), and when a pool process
    dies, billiard's supervisor thread requeues its message (``_put``, via
    ``reject_on_worker_lost``). Once in a CI run the two commits overlapped
    and the worker stopped consuming with SQLAlchemy's
    ``IllegalStateChangeError`` ("commit() is already in progress"), so the
    channel's session methods take a per-channel lock.
    """
    import threading

    from kombu.transport import sqlalchemy as kombu_sqla

    kombu_sqla.Transport.polling_interval = 0.2
    if getattr(kombu_sqla.Transport.Channel, "jsp_locked", False):
        return

    base = kombu_sqla.Transport.Channel

    def locked(method):
        def run(self, *args, **kwargs):
            with self._jsp_session_lock:
                return method(self, *args, **kwargs)
        return run

    class LockedSQLAChannel(base):
        """kombu's SQLAlchemy channel with its session used by one thread at a time."""

        jsp_locked = True

        def __init__(self, *args, **kwargs):
            self._jsp_session_lock = threading.RLock()
            super().__init__(*args, **kwargs)

        _get, _put, _purge = locked(base._get), locked(base._put), locked(base._purge)
        _size, _new_queue = locked(base._size), locked(base._new_queue)

    kombu_sqla.Transport.Channel = LockedSQLAChannel


if broker_url().startswith("sqla+"):
    _tune_sqla_transport()

app = Celery("jspdb", broker=broker_url(), include=["workers.tasks_tap", "workers.tasks_ingest", "workers.tasks_jobs"])
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    result_backend=None,
    broker_connection_retry_on_startup=True,
    task_default_queue=get_settings().queue,
    worker_hijack_root_logger=False,
    # When a pool process dies, billiard waits this long for a result it might still have sent
    # before it declares the task lost and Celery requeues it (default 10 s). Our tasks send no
    # results (their outcome is in PostgreSQL), so waiting only delays the retry.
    worker_lost_wait=1.0,
    # With `celery -A workers.app beat`: expired TAP jobs and results go every 10 minutes
    # (the API also purges on every job listing); tile jobs lost with a dead worker host are
    # re-sent every JSP_JOB_SWEEP_INTERVAL_S (jspdb.jobs.plan.sweep).
    beat_schedule={"tap-purge-expired": {"task": "jspdb.tap.purge_expired", "schedule": 600.0},
                   "jobs-sweep": {"task": "jspdb.jobs.sweep", "schedule": get_settings().job_sweep_interval_s}},
)


def ensure_broker_ready() -> None:
    """Create the SQLAlchemy transport's tables and the task queue, once, under a lock.

    kombu creates its tables (and queue rows) lazily on first use; when the
    API and a worker start at the same moment both try and one fails with a
    duplicate-key error. Both call this first (the API at startup, workers
    on ``worker_init``), serialised by a PostgreSQL advisory lock. A no-op
    for RabbitMQ and Redis.
    """
    if not broker_url().startswith("sqla+"):
        return
    import psycopg

    with psycopg.connect(libpq_dsn(database_url(get_settings())), autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (BROKER_SETUP_LOCK_KEY,))
        try:
            with app.connection_for_write() as conn:
                channel = conn.default_channel
                app.amqp.queues[app.conf.task_default_queue](channel).declare()
                # kombu's channel keeps its SQLAlchemy session (and a checked-out connection) past
                # close(); give the connection back now, while this process still owns it.
                if getattr(channel, "_session", None) is not None:
                    channel._session.close()
                    channel._session = None
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s)", (BROKER_SETUP_LOCK_KEY,))
    _forget_sqla_engines(close=True)
    gc.collect()  # finalise leftovers here, not in a forked child


def _forget_sqla_engines(close: bool) -> None:
    """Drop kombu's cached SQLAlchemy engines (a class-level dict, ``Channel._engines``).

    The cache survives ``fork``: a prefork pool child would otherwise reuse the
    parent's pooled connections, two processes talking on one socket, which
    shows up as IndexError / ResourceClosedError on sends made from tasks and
    as a consumer that stops receiving. In a child, ``close=False`` leaves the
    parent's sockets alone (SQLAlchemy's documented recipe for forking), and
    inherited connections are returned without a reset.
    """
    from kombu.transport import sqlalchemy as kombu_sqla
    from sqlalchemy.pool.base import reset_none

    engines = kombu_sqla.Channel._engines
    for engine, _session in list(engines.values()):
        if not close:
            # A session inherited from the parent may be garbage-collected here later; its
            # connection must then go back silently, not ROLLBACK over the parent's socket
            # (seen: a pool child hung forever in that ROLLBACK during an import).
            engine.pool._reset_on_return = reset_none
        engine.dispose(close=close)
    engines.clear()


@worker_init.connect
def _worker_init(**_kwargs) -> None:
    ensure_broker_ready()


@worker_process_init.connect
def _worker_process_init(**_kwargs) -> None:
    if broker_url().startswith("sqla+"):
        _forget_sqla_engines(close=False)
