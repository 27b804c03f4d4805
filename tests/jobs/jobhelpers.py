"""Helpers of the jobs tier's tests: load the simulated field, start and stop real Celery workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from fault_steps import SCHEMA_SQL
from sqlalchemy.engine import make_url

from jspdb.config import Settings
from jspdb.db import migrate
from jspdb.db.engine import libpq_dsn
from jspdb.db.release import create_release
from jspdb.ingest.images import ingest_images
from jspdb.ingest.refcat import ingest_refcat

HERE = Path(__file__).parent
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def rabbitmq_available() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class JobsDB:
    settings: Settings
    dsn: str
    n_images: int


def load_field(settings: Settings, field_dir: Path) -> JobsDB:
    """Migrate, ingest the simulated field and its reference catalog, add the fault-step tables."""
    migrate.upgrade("head", settings=settings)
    dsn = libpq_dsn(make_url(settings.database_url))
    with psycopg.connect(dsn) as c:
        rep = ingest_images(c, [field_dir / "images"], tile_order=settings.tile_order, datastore=settings.datastore)
        assert rep.ok, rep
        ingest_refcat(c, field_dir / "reference.parquet")
        c.execute(SCHEMA_SQL)
        c.commit()
    return JobsDB(settings, dsn, len(rep.ingested))




@dataclass
class Worker:
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill_all(self) -> None:
        """SIGKILL the worker and its pool at once (test teardown: nothing of the test needs them any more).

        A cold shutdown on the PostgreSQL broker takes ~5 s (restoring unacknowledged
        messages); a test's queue and release are its own, so nothing needs them back.
        """
        try:  # also when the main process is gone: its pool may live on in the group
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker leads its own process group
        except ProcessLookupError:
            pass
        self.proc.wait(30)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def worker_env(settings: Settings, broker: str | None, queue: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSP_")}
    env.update(JSP_DATABASE_URL=settings.database_url, JSP_DATASTORE_ROOT=str(settings.datastore),
               JSP_PARTITION_ORDER=str(settings.partition_order), JSP_QUEUE=queue,
               JSP_STEP_MODULES='["fault_steps"]', JSP_JOB_STALE_AFTER_S="5",
               PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               PYTHONWARNINGS="ignore")
    if broker:
        env["JSP_BROKER_URL"] = broker
    return env


def set_step_sleep(dsn: str, seconds: float) -> None:
    """How long each ``fault_work`` step sleeps with its results written but not committed."""
    with psycopg.connect(dsn) as c:
        c.execute("INSERT INTO fault_ctl VALUES ('sleep_s', %s) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                  (seconds,))


def new_release(db: JobsDB, name: str, sleep_s: float) -> int:
    """Create release ``name`` for one test; returns its id."""
    with psycopg.connect(db.dsn) as c:
        rid = create_release(c, name, db.settings.partition_order)["release_id"]
    set_step_sleep(db.dsn, sleep_s)
    return rid


def wait_for_jobs(dsn: str, rid: int, state: str, at_least: int, timeout: float = 60, log: str = "") -> None:
    """Wait until ``at_least`` jobs of the release are in ``state``."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as c:
        while c.execute("SELECT count(*) FROM jsp.tile_job WHERE release_id = %s AND state = %s",
                        (rid, state)).fetchone()[0] < at_least:
            assert time.monotonic() < deadline, log
            time.sleep(0.05)


def purge_queue(env: dict[str, str]) -> None:
    """Delete the test's queue from RabbitMQ (no-op for the default broker: its database is dropped)."""
    if not env.get("JSP_BROKER_URL"):
        return
    from kombu import Connection

    with Connection(env["JSP_BROKER_URL"]) as conn:
        try:
            conn.default_channel.queue_delete(env["JSP_QUEUE"])
        except Exception:  # noqa: BLE001 - already gone
            pass


def spawn_worker(env: dict[str, str], log_dir: Path, concurrency: int = 2, name: str = "w") -> Worker:
    """Start ``celery worker`` (prefork, ``concurrency`` processes) and wait until it is ready."""
    name = f"{name}-{uuid.uuid4().hex[:6]}"
    log_path = log_dir / f"{name}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-c", str(concurrency), "-l", "info",
             "-Q", env["JSP_QUEUE"], "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    w = Worker(proc, log_path)
    deadline = time.monotonic() + 60
    while " ready." not in w.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            w.stop(signal.SIGKILL)
            raise RuntimeError(f"worker did not start:\n{w.log()}")
        time.sleep(0.2)
    return w
