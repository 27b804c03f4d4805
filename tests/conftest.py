"""Shared fixtures: a real PostgreSQL server (with pg_sphere and q3c), fresh
databases migrated by Alembic, and the CLI.

Which server: ``JSP_DATABASE_URL`` when set (CI points it at the machine's
PostgreSQL; its database is used only as the admin connection, each test
session creates and drops databases of its own). Otherwise a private local
cluster is started in a temporary directory with jspdb's own
`jspdb.db.local.LocalCluster`, so a fresh machine needs no setup beyond the
PostgreSQL binaries.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from jspdb.config import Settings
from jspdb.db import migrate
from jspdb.db.engine import libpq_dsn

#: Partition order of the session database: 192 partitions keep the suite fast
#: while still exercising pruning (the benchmarks use order 3, 768 partitions).
TEST_PARTITION_ORDER = 2


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """libpq URL of a database on the test server with CREATE DATABASE rights."""
    url = os.environ.get("JSP_DATABASE_URL")
    if url:
        yield libpq_dsn(make_url(url))
        return
    from jspdb.db.local import LocalCluster

    # Not pytest's tmp_path: its parents are mode 0700 and, when the suite
    # runs as root, the server runs as another user who must reach the dir.
    home = Path(tempfile.mkdtemp(prefix="jsp-test-cluster-"))
    home.chmod(0o755)
    cluster = LocalCluster(home=home, port=_free_port())
    cluster.start()
    try:
        yield libpq_dsn(cluster.url("postgres"))
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def make_database(admin_url: str) -> Iterator[Callable[..., Settings]]:
    """Factory: a new empty database on the test server, as `Settings`.

    Every database made is dropped at the end of the session.
    """
    made: list[str] = []

    def _make(**overrides) -> Settings:
        name = f"jsp_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        url = make_url(admin_url).set(database=name, drivername="postgresql+psycopg")
        params = {"database_url": url.render_as_string(hide_password=False),
                  "partition_order": TEST_PARTITION_ORDER, "migration_lock_timeout_ms": 2000}
        params.update(overrides)
        return Settings(**params)

    yield _make
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def db_settings(make_database) -> Settings:
    """Settings of one database migrated to head, shared by the session."""
    settings = make_database()
    migrate.upgrade("head", settings=settings)
    return settings


@pytest.fixture
def dsn(db_settings: Settings) -> str:
    return libpq_dsn(make_url(db_settings.database_url))


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """A connection to the session database whose work is rolled back after the test."""
    with psycopg.connect(dsn) as c:
        c.execute("SELECT 1")  # open the transaction the test runs (and is rolled back) in
        yield c
        c.rollback()


@pytest.fixture
def cli_env(db_settings: Settings) -> dict[str, str]:
    """Environment for running ``jsp`` as a subprocess against the session database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSP_")}
    env["JSP_DATABASE_URL"] = db_settings.database_url
    env["JSP_PARTITION_ORDER"] = str(db_settings.partition_order)
    return env


@pytest.fixture(scope="session")
def run_jsp() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``jsp`` console command in a subprocess."""
    exe = Path(sys.executable).with_name("jsp")

    def _run(*args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300,
             cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=cwd)
        if check and proc.returncode != 0:
            raise AssertionError(f"jsp {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return _run


# -- the simulated field shared by every tier's tests -------------------------

#: 1' x 1', all surveys, two LSST epochs, 30x the star counts (so every image
#: has stars to measure), default galaxy density.
SIM_SPEC_KW = dict(ra=150.1, dec=2.2, size_arcmin=1.0, seed=20261127, star_density=30.0, lsst_epochs=2)


def _rendered_once(tmp_path_factory: pytest.TempPathFactory, worker_id: str, spec_kw: dict):
    """Render a simulated field once per test run, also when pytest-xdist runs several processes.

    The first process to need it renders and pickles it next to the run's temporary
    directories; the others wait on a file lock and read it back (the xdist recipe
    for session fixtures that must execute once).
    """
    import hashlib
    import pickle

    from filelock import FileLock

    from jspdb.sim.field import simulate_field
    from jspdb.sim.spec import FieldSpec

    if worker_id == "master":  # not under xdist
        return simulate_field(FieldSpec(**spec_kw), workers=2)
    key = hashlib.sha256(repr(sorted(spec_kw.items())).encode()).hexdigest()[:16]
    path = tmp_path_factory.getbasetemp().parent / f"field-{key}.pickle"
    with FileLock(str(path) + ".lock"):
        if path.is_file():
            return pickle.loads(path.read_bytes())
        rendered = simulate_field(FieldSpec(**spec_kw), workers=2)
        path.write_bytes(pickle.dumps(rendered))
        return rendered


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    """The pytest-xdist process name (``gw0``...), or ``master`` when the suite runs in one process."""
    return getattr(request.config, "workerinput", {}).get("workerid", "master")


@pytest.fixture(scope="session")
def field(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """The simulated field in memory (truth, reference catalog, images), rendered once."""
    return _rendered_once(tmp_path_factory, worker_id, SIM_SPEC_KW)


@pytest.fixture(scope="session")
def field_dir(field, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated field written in each survey's delivery convention."""
    from jspdb.sim.writers import write_field

    out = tmp_path_factory.mktemp("simfield")
    write_field(field, out)
    return out


#: The concordance accuracy field: same sky position and size, 150x the star counts (about 45
#: reference stars per image, a third of them bright enough for precise synthetic magnitudes).
RICH_SPEC_KW = dict(ra=150.1, dec=2.2, size_arcmin=1.0, seed=7, star_density=150.0, lsst_epochs=2)


@pytest.fixture(scope="session")
def rich_field(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """The star-rich simulated field (truth, reference catalog, 22 images); renders in ~25 s on 2 cores."""
    return _rendered_once(tmp_path_factory, worker_id, RICH_SPEC_KW)
