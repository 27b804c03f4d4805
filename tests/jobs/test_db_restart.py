"""The database restarts in the middle of a run: the run completes after it returns.

The database is a project-local cluster (`jspdb.db.local.LocalCluster`) of
this test's own, so that restarting it disturbs nothing else. Broker: the
default (the same database, so it goes away too) and RabbitMQ.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from jobhelpers import load_field, new_release, purge_queue, worker_env
from test_faults import BROKERS, _check_results, _executions, _wait_finished

from jspdb.config import Settings
from jspdb.db.local import LocalCluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def own_cluster(field_dir, tmp_path_factory):
    home = Path(tempfile.mkdtemp(prefix="jsp-restart-"))
    home.chmod(0o755)  # as root the server runs as another user, who must reach it
    cluster = LocalCluster(home=home, port=_free_port())
    cluster.start()
    try:
        settings = Settings(database_url=cluster.url().set(drivername="postgresql+psycopg").render_as_string(
            hide_password=False), datastore_root=tmp_path_factory.mktemp("restartstore"), partition_order=1)
        yield cluster, load_field(settings, field_dir)
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("broker", BROKERS)
def test_run_completes_after_a_database_restart(own_cluster, broker, start_worker, tmp_path):
    cluster, db = own_cluster
    release = f"r_{uuid.uuid4().hex[:8]}"
    rid = new_release(db, release, sleep_s=0.5)
    env = worker_env(db.settings, broker, f"jspdb-{release}")
    w = start_worker(env, concurrency=2)
    jsp = Path(__import__("sys").executable).with_name("jsp")
    runner = subprocess.Popen([str(jsp), "run", "--release", release, "--all", "--step", "fault_work", "--wait",
                               "--timeout", "240"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        with psycopg.connect(db.dsn, autocommit=True) as c:
            deadline = time.monotonic() + 60
            while c.execute("SELECT count(*) FROM jsp.tile_job WHERE release_id = %s AND state = 'done'",
                            (rid,)).fetchone()[0] < 3:
                assert time.monotonic() < deadline and runner.poll() is None
                time.sleep(0.05)
        cluster.stop()  # fast shutdown: running steps lose their connection mid-transaction
        time.sleep(3.0)
        cluster.start()
        out, _ = runner.communicate(timeout=280)
    finally:
        if runner.poll() is None:
            runner.kill()
        purge_queue(env)
    assert runner.returncode == 0, out
    jobs = _wait_finished(db.dsn, rid, timeout=30)
    assert all(j[2] == "done" for j in jobs), jobs
    _check_results(db.dsn, rid, db.n_images)
    assert all(n >= 1 for n in _executions(db.dsn, rid).values())
    assert w.proc.poll() is None, w.log()  # the worker rode out the outage
