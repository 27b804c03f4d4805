"""Fixtures of the jobs tier: a database holding the simulated field, and real Celery workers.

Workers are real ``celery worker`` processes (prefork pool) on a real broker:
the default (kombu's SQLAlchemy transport on the test database) or the
machine's RabbitMQ. Each test gets its own queue name, so that messages left
on RabbitMQ by one test can never reach another test's database.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The fault steps and helpers: modules here, importable by the tests and (PYTHONPATH) the workers.
sys.path.insert(0, str(Path(__file__).parent))
from jobhelpers import JobsDB, Worker, load_field, spawn_worker  # noqa: E402


@pytest.fixture(scope="session")
def jobs_db(make_database, tmp_path_factory, field_dir) -> JobsDB:
    """One database with the 1' simulated field ingested (images, reference catalog)."""
    settings = make_database(datastore_root=tmp_path_factory.mktemp("jobstore"))
    return load_field(settings, field_dir)


@pytest.fixture
def start_worker(tmp_path) -> Iterator[Callable[..., Worker]]:
    """Factory: start ``celery worker`` with an environment; every worker is stopped at teardown."""
    started: list[Worker] = []

    def _start(env: dict[str, str], concurrency: int = 2, name: str | None = None) -> Worker:
        w = spawn_worker(env, tmp_path, concurrency, name or f"w{len(started)}")
        started.append(w)
        return w

    yield _start
    for w in started:
        w.kill_all()  # the test is over, its queue and release are its own




@pytest.fixture
def start_beat(tmp_path) -> Iterator[Callable[[dict[str, str]], Path]]:
    """Factory: start ``celery beat`` (the periodic ``jspdb.jobs.sweep``) with an environment; returns its log.

    The beat is stopped at teardown.
    """
    started: list[subprocess.Popen] = []

    def _start(env: dict[str, str]) -> Path:
        log_path = tmp_path / f"beat{len(started)}.log"
        with open(log_path, "w") as log:
            started.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "-l", "info",
                 "-s", str(tmp_path / f"beat{len(started)}-schedule")], env=env, stdout=log,
                stderr=subprocess.STDOUT))
        return log_path

    yield _start
    for p in started:
        p.terminate()
        p.wait(20)
