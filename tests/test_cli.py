"""The `jsp` command: help everywhere, clear errors, the demo job end to end."""

import re

import psycopg
import pytest
from sqlalchemy.engine import make_url

from jspdb.db.engine import libpq_dsn


@pytest.mark.parametrize("args", [(), ("db",), ("release",), ("sim",), ("db", "upgrade"), ("release", "create"),
                                  ("demo",), ("cone",)])
def test_help_on_every_command(run_jsp, args):
    out = run_jsp(*args, "--help").stdout
    assert "Usage: jsp" in out


def test_bad_config_gives_one_clear_line(run_jsp, cli_env):
    env = dict(cli_env, JSP_PARTITION_ORDER="31")
    proc = run_jsp("release", "list", env=env, check=False)
    assert proc.returncode != 0
    assert "HEALPix order must be within 0..29" in proc.stderr
    env = dict(cli_env, JSP_DATABASE_URL="mysql://x@y/z")
    proc = run_jsp("release", "list", env=env, check=False)
    assert proc.returncode == 1 and "needs PostgreSQL" in proc.stderr


def test_demo_end_to_end(run_jsp, make_database, tmp_path):
    settings = make_database()
    env = {"JSP_DATABASE_URL": settings.database_url, "JSP_PARTITION_ORDER": "2", "PATH": "/usr/bin:/bin",
           "JSP_HOME": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    out = run_jsp("demo", "--n-rows", "50000", "--field-arcmin", "0.5", env=env).stdout
    assert "loaded 50,000 rows" in out
    assert "planner kept 1 of 192 partitions" in out
    # the concordance chain ran on a real worker and was compared with the truth
    assert re.search(r"\btie +done +1 +failed +0", out), out
    assert "true error" in out and "QA plots in" in out
    with psycopg.connect(libpq_dsn(make_url(settings.database_url))) as c:
        assert c.execute("SELECT count(*) FROM jsp.refcat WHERE source_id >= 9000000000000000").fetchone()[0] == 50_000
        assert c.execute("SELECT state FROM jsp.release WHERE name = 'demo'").fetchone()[0] == "staging"
        n_solved = c.execute("SELECT count(*) FROM jsp.astrometric_solution").fetchone()[0]
    assert n_solved >= 3  # a 0.5' field: most images have too few stars, and fail saying so
    assert list((tmp_path / "datastore" / "qa" / "demo").glob("tile_*/astrometry_*.png"))
    # a second run finds everything in place and still answers
    out2 = run_jsp("demo", "--n-rows", "50000", "--field-arcmin", "0.5", env=env).stdout
    assert "ingested 0 images" in out2
    assert "already holds 50,000 demo rows" in out2
    n_cone = int(out2.split("cone r=3' at (150.0, 2.0): ")[1].split()[0])
    with psycopg.connect(libpq_dsn(make_url(settings.database_url))) as c:
        brute = c.execute("SELECT count(*) FROM jsp.refcat WHERE q3c_dist(ra, dec, 150, 2) <= 0.05").fetchone()[0]
    assert n_cone == brute > 0
