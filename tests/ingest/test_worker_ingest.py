"""Ingest on a real Celery worker process over the real broker (the SQLAlchemy transport on PostgreSQL)."""

import os
import subprocess
import sys
import time

import pytest

from jspdb.ingest.images import expand_paths


@pytest.fixture
def worker_env(ingest_settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSP_")}
    env.update(JSP_DATABASE_URL=ingest_settings.database_url, JSP_DATASTORE_ROOT=str(ingest_settings.datastore),
               JSP_TILE_ORDER=str(ingest_settings.tile_order))
    return env


def test_fleet_ingest_on_a_worker(run_jsp, worker_env, iconn, field_dir, tmp_path):
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed in finally
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-c", "1", "-l", "warning",
         "-Q", "jspdb", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=worker_env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        # kombu's SQLAlchemy transport creates its tables on first use; let the
        # worker do it before anyone submits (two creators at once can collide)
        deadline = time.monotonic() + 60
        while iconn.execute("SELECT to_regclass('public.kombu_queue')").fetchone()[0] is None:
            iconn.commit()
            assert time.monotonic() < deadline and worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        iconn.commit()
        files = expand_paths([field_dir / "images"])
        out = run_jsp("ingest", "images", str(field_dir / "images"), "--submit", "--batch-size", "6",
                      env=worker_env).stdout
        assert out.count("submitted task") == -(-len(files) // 6)
        # the same work submitted twice is done once (idempotent by checksum)
        run_jsp("ingest", "images", str(field_dir / "images"), "--submit", "--batch-size", "100", env=worker_env)
        deadline = time.monotonic() + 120
        n = 0
        while time.monotonic() < deadline:
            n = iconn.execute("SELECT count(*) FROM jsp.image").fetchone()[0]
            iconn.commit()
            queued = iconn.execute("SELECT count(*) FROM kombu_message WHERE visible").fetchone()[0]
            iconn.commit()
            if n == len(files) and queued == 0:
                break
            time.sleep(0.5)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        assert n == len(files)
        time.sleep(1.0)  # let the duplicate submission finish: it must add nothing
        assert iconn.execute("SELECT count(*) FROM jsp.image").fetchone()[0] == len(files)
        assert iconn.execute("SELECT count(DISTINCT checksum_sha256) FROM jsp.image").fetchone()[0] == len(files)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
