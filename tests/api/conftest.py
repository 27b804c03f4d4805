"""Fixtures of the access-tier tests: a warehouse with data, a real uvicorn
server on a free loopback port, real Celery worker processes, real users.

Everything is session-scoped (one database, one server, one worker pool):
the API tests drive them over HTTP with pyvo and requests, as clients do.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from jspdb.api.users import add_user, delete_user
from jspdb.config import Settings
from jspdb.db import migrate
from jspdb.db.engine import libpq_dsn
from jspdb.db.release import create_release, publish_release
from jspdb.healpix import hpx29
from jspdb.refcat import load_refcat, synthetic_refcat

#: Field of the test data: 4 x 4 deg around (150, 2).
FIELD = {"ra_range": (148.0, 152.0), "dec_range": (0.0, 4.0)}
N_REFCAT = 20_000
N_OBJECTS = 5_000



def _buffer(response: requests.Response, *args, **kwargs) -> requests.Response:
    """Read a response whole and serve ``.raw`` from memory.

    pyvo reads streamed responses through ``response.raw`` and never closes
    them; the socket then leaks until garbage collection (a ResourceWarning,
    an error under ``filterwarnings = error``). Reading the body releases the
    connection to the pool at once.
    """
    body = response.content
    response.raw = _Body(body)
    return response


class _Body(io.BytesIO):
    """A body read whole, with urllib3's ``read`` signature."""

    def read(self, amt: int | None = None, decode_content: bool | None = None, **kw) -> bytes:
        return super().read(-1 if amt is None else amt)

    def stream(self, amt: int = 65536, decode_content: bool | None = None):
        while chunk := self.read(amt):
            yield chunk


def client_session() -> requests.Session:
    """A requests session whose responses never hold a socket."""
    s = requests.Session()
    s.hooks["response"].append(_buffer)
    return s


@dataclass
class User:
    """A service user of the tests."""

    name: str
    token: str
    role: str
    schema: str
    _session: requests.Session | None = None

    def session(self) -> requests.Session:
        """This user's HTTP session (bearer token set), closed at the end of the tests."""
        if self._session is None:
            self._session = client_session()
            self._session.headers["Authorization"] = f"Bearer {self.token}"
        return self._session


@dataclass
class Server:
    """The running service."""

    url: str
    tap: str
    dsn: str
    settings: Settings
    datastore: Path
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load(dsn: str) -> None:
    """Reference catalog, release dr1 (objects + forced photometry), images."""
    with psycopg.connect(dsn) as conn:
        # Commit step by step: each step locks hundreds of partitions, and the
        # lock table is shared with every other test session on the server.
        load_refcat(conn, synthetic_refcat(N_REFCAT, seed=7, **FIELD))
        conn.commit()
        create_release(conn, "dr1", 2, {"job": "api-tests"})
        conn.commit()
        rng = np.random.default_rng(11)
        ref = conn.execute("SELECT ra, dec FROM jsp.refcat ORDER BY source_id LIMIT %s", (N_OBJECTS,)).fetchall()
        ra = np.array([r[0] for r in ref]) + rng.normal(0, 0.1 / 3600, N_OBJECTS)
        dec = np.array([r[1] for r in ref]) + rng.normal(0, 0.1 / 3600, N_OBJECTS)
        ra %= 360.0
        h = hpx29(ra, dec)
        ids = np.arange(1, N_OBJECTS + 1, dtype=np.int64) + 10_000_000
        with conn.cursor().copy("COPY dr1.object (object_id, hpx29, ra, dec, tile_order, tile_ipix, is_point, "
                                "flags) FROM STDIN") as cp:
            for i in range(N_OBJECTS):
                cp.write_row((int(ids[i]), int(h[i]), float(ra[i]), float(dec[i]), 9, int(h[i] >> 40),
                              bool(i % 3 == 0), 0))
        with conn.cursor().copy("COPY dr1.forced_photometry (object_id, hpx29, band_id, flux_njy, flux_err_njy) "
                                "FROM STDIN") as cp:
            for i in range(N_OBJECTS):
                for band in (3, 7):
                    cp.write_row((int(ids[i]), int(h[i]), band, float(rng.uniform(100, 1e4)), 10.0))
        conn.commit()
        publish_release(conn, "dr1")
        # Four images: LSST r and Euclid VIS, two pointings.
        for k, (survey, band, kind, ra0, dec0, scale) in enumerate([
                (1, 3, "single_epoch", 149.5, 1.5, 0.2), (1, 3, "coadd", 150.5, 2.5, 0.2),
                (2, 7, "single_epoch", 149.5, 1.5, 0.1), (3, 15, "single_epoch", 151.5, 3.5, 0.11)]):
            half = 0.1
            poly = "{" + ",".join(f"({a}d,{d}d)" for a, d in [(ra0 - half, dec0 - half), (ra0 + half, dec0 - half),
                                                             (ra0 + half, dec0 + half), (ra0 - half, dec0 + half)]) + "}"
            wl = conn.execute("SELECT wl_min_nm, wl_max_nm FROM jsp.band WHERE band_id = %s", (band,)).fetchone()
            conn.execute(
                "INSERT INTO jsp.image (survey_id, band_id, kind, obs_id, uri, checksum_sha256, size_bytes, naxis1, "
                "naxis2, wcs_header, pixel_scale_arcsec, ra_center, dec_center, center, footprint, t_min_mjd, "
                "t_max_mjd, exptime_s, wl_min_nm, wl_max_nm, psf_fwhm_arcsec) VALUES (%s, %s, %s, %s, %s, %s, "
                "%s, 4000, 4000, '', %s, %s, %s, spoint(radians(%s), radians(%s)), %s::spoly, %s, %s, 30, %s, %s, "
                "0.7)",
                (survey, band, kind, f"obs{k}", f"file:///data/img{k}.fits", f"{k:064x}", 64_000_000, scale, ra0,
                 dec0, ra0, dec0, poly, 60000.0 + k, 60000.0 + k + 0.001, wl[0], wl[1]))
        conn.execute("ANALYZE")
        conn.commit()


@pytest.fixture(scope="session")
def tap_settings(make_database) -> Settings:
    """A migrated, loaded warehouse database."""
    settings = make_database()
    migrate.upgrade("head", settings=settings)
    _load(libpq_dsn(make_url(settings.database_url)))
    return settings


@pytest.fixture(scope="session")
def tap_dsn(tap_settings: Settings) -> str:
    return libpq_dsn(make_url(tap_settings.database_url))


@pytest.fixture(scope="session")
def users(tap_dsn: str) -> Iterator[dict[str, User]]:
    """alice and bob (default limits), and carol (tight limits: 1 async job, 20 requests/min)."""
    made: dict[str, User] = {}
    with psycopg.connect(tap_dsn) as conn:
        for name in ("alice", "bob", "carol"):
            row, token = add_user(conn, name)
            made[name] = User(name, token, row["role_name"], row["schema_name"])
        conn.execute("UPDATE jsp.api_user SET max_async_jobs = 1, rate_per_min = 20 WHERE name = 'carol'")
        conn.commit()
    yield made
    for u in made.values():
        if u._session is not None:
            u._session.close()
    with psycopg.connect(tap_dsn) as conn:
        for name in made:
            delete_user(conn, name)
        conn.commit()


@pytest.fixture(scope="session")
def server(tap_settings: Settings, tap_dsn: str, users, tmp_path_factory) -> Iterator[Server]:
    """`jsp serve` (uvicorn, `jspdb.api.app`) and two Celery worker processes, on the test database."""
    datastore = tmp_path_factory.mktemp("datastore")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSP_")}
    env.update({
        "JSP_DATABASE_URL": tap_settings.database_url,
        "JSP_PARTITION_ORDER": str(tap_settings.partition_order),
        "JSP_DATASTORE_ROOT": str(datastore),
        "JSP_API_CATALOG_TTL_S": "0.5",
        "JSP_API_ANON_TIMEOUT_MS": "3000",
        "JSP_API_ANON_DEFAULT_MAXREC": "5000",
        "JSP_API_ANON_MAX_ROWS": "20000",
        "JSP_API_POOL_MAX": "12",
        "PYTHONWARNINGS": "ignore",
    })
    server_log = open(datastore / "server.log", "w")  # noqa: SIM115 (closed at teardown)
    worker_log = open(datastore / "worker.log", "w")  # noqa: SIM115
    # `jsp serve` (jspdb.cli.serve), run as its own process.
    srv = subprocess.Popen(
        [sys.executable, "-c", "import typer; from jspdb.cli.serve import serve; typer.run(serve)",
         "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=server_log, stderr=subprocess.STDOUT)
    wrk = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-c", "2", "-l", "warning",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", f"tap-test-{port}@%h"],
        env=env, stdout=worker_log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if srv.poll() is not None:
                raise RuntimeError(f"server exited: {(datastore / 'server.log').read_text()}")
            try:
                if requests.get(f"{url}/tap/availability", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in 60 s")
            time.sleep(0.2)
        yield Server(url, f"{url}/tap", tap_dsn, tap_settings, datastore, env)
    finally:
        for proc in (srv, wrk):
            proc.terminate()
        for proc in (srv, wrk):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        server_log.close()
        worker_log.close()


@pytest.fixture(scope="session")
def anon() -> Iterator[requests.Session]:
    """An HTTP session without a token (closed at the end, so no socket leaks)."""
    with client_session() as s:
        yield s


@pytest.fixture
def db(tap_dsn: str) -> Iterator[psycopg.Connection]:
    """An admin connection to the test database (autocommit)."""
    with psycopg.connect(tap_dsn, autocommit=True) as conn:
        yield conn
