"""Migrations against a real PostgreSQL: up, down, up; drift; locking discipline."""

import subprocess
import sys
import threading
import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from jspdb.db import migrate
from jspdb.db.engine import libpq_dsn
from jspdb.errors import MigrationError


def _tables(dsn):
    with psycopg.connect(dsn) as c:
        return {r[0] for r in c.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'jsp' AND relkind IN ('r', 'p') AND NOT relispartition")}


def test_up_down_up_on_empty_database(make_database):
    settings = make_database()
    dsn = libpq_dsn(make_url(settings.database_url))
    assert migrate.current(settings) is None
    migrate.upgrade("head", settings=settings)
    assert migrate.current(settings) == migrate.head()
    assert {"image", "refcat", "tile", "tile_job", "release", "band", "survey", "instrument",
            "astrometric_solution", "photometric_solution", "psf_model"} <= _tables(dsn)
    with psycopg.connect(dsn) as c:
        exts = {r[0] for r in c.execute("SELECT extname FROM pg_extension")}
        assert {"pg_sphere", "q3c"} <= exts
        nparts = c.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'jsp.refcat'::regclass").fetchone()[0]
        assert nparts == 12 * 4**settings.partition_order
        assert c.execute("SELECT count(*) FROM jsp.band").fetchone()[0] == 16
    migrate.check(settings)  # no drift between models and database

    migrate.downgrade("0001", settings=settings)
    assert "astrometric_solution" not in _tables(dsn) and "image_plane" not in _tables(dsn)
    migrate.downgrade("base", settings=settings)
    assert migrate.current(settings) is None
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT to_regnamespace('jsp')").fetchone()[0] is None
    migrate.upgrade("head", settings=settings)
    assert migrate.current(settings) == migrate.head()
    migrate.check(settings)


def test_drift_is_detected(make_database):
    settings = make_database()
    migrate.upgrade("head", settings=settings)
    with psycopg.connect(libpq_dsn(make_url(settings.database_url))) as c:
        c.execute("ALTER TABLE jsp.image ADD COLUMN sneaky integer")
    with pytest.raises(MigrationError, match="drift"):
        migrate.check(settings)


def test_concurrent_upgrades_are_serialised(make_database, tmp_path):
    """Two `jsp db upgrade` processes at once: both succeed, schema built once."""
    settings = make_database()
    env = {"JSP_DATABASE_URL": settings.database_url, "JSP_PARTITION_ORDER": "2", "PATH": "/usr/bin:/bin"}
    exe = [sys.executable, "-m", "jspdb.cli.main", "db", "upgrade"]
    procs = [subprocess.Popen(exe, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    assert migrate.current(settings) == migrate.head()
    migrate.check(settings)
    # One of them did the work; the other found the schema at head. Without
    # the advisory lock the second would fail with "relation already exists".
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from jspdb.db.migrate import REPO_ROOT

    script = ScriptDirectory.from_config(Config(str(REPO_ROOT / "alembic.ini")))
    every = ", ".join(reversed([r.revision for r in script.walk_revisions()]))
    said = sorted(out.splitlines()[0] for out, _ in outs)
    assert said == [f"applied {every}", "nothing to apply"], said


def test_blocked_migration_fails_fast(make_database):
    """A migration waiting behind a lock gives up after lock_timeout, cleanly."""
    settings = make_database(migration_lock_timeout_ms=500)
    migrate.upgrade("head", settings=settings)
    dsn = libpq_dsn(make_url(settings.database_url))
    holder = psycopg.connect(dsn)
    try:
        holder.execute("SELECT * FROM jsp.psf_model LIMIT 1")  # ACCESS SHARE held until rollback
        t0 = time.monotonic()
        with pytest.raises(MigrationError, match="lock"):
            migrate.downgrade("0001", settings=settings)  # DROP TABLE needs ACCESS EXCLUSIVE
        assert time.monotonic() - t0 < 10
    finally:
        holder.rollback()
        holder.close()
    # nothing half-done: still at head, and the downgrade works once the lock is gone
    assert migrate.current(settings) == migrate.head()
    migrate.downgrade("0001", settings=settings)
    assert migrate.current(settings) == "0001"


def test_advisory_lock_makes_second_runner_wait(make_database):
    """While one session holds the migration lock, an upgrade waits, then proceeds."""
    import importlib.util

    from jspdb.db.migrate import REPO_ROOT

    spec = importlib.util.spec_from_file_location("envkey", REPO_ROOT / "migrations" / "env.py")
    key_line = next(line for line in spec.loader.get_data(spec.origin).decode().splitlines()
                    if line.startswith("MIGRATION_LOCK_KEY"))
    key = eval(key_line.split("=", 1)[1].split("#")[0])  # literal int from env.py
    settings = make_database()
    dsn = libpq_dsn(make_url(settings.database_url))
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        done = threading.Event()
        t = threading.Thread(target=lambda: (migrate.upgrade("head", settings=settings), done.set()))
        t.start()
        time.sleep(1.5)
        assert not done.is_set(), "upgrade did not wait for the migration lock"
        holder.execute("SELECT pg_advisory_unlock(%s)", (key,))
        t.join(120)
    assert done.is_set()
    assert migrate.current(settings) == migrate.head()
