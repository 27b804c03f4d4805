"""Binary COPY loader against the real database."""

import numpy as np
import psycopg
import pytest

from jspdb.db.copy import copy_columns, encode_binary_copy
from jspdb.errors import LoadError
from jspdb.refcat import REFCAT_COLUMNS, load_refcat, synthetic_refcat


def _count(conn, where="TRUE", params=()):
    return conn.execute(f"SELECT count(*) FROM jsp.refcat WHERE {where}", params).fetchone()[0]


def test_encoder_round_trips_through_postgres_with_nulls(conn):
    conn.execute("CREATE TEMP TABLE t (a bigint, b double precision, c real, d integer, e smallint, f boolean)")
    rng = np.random.default_rng(0)
    n = 5000
    cols = {
        "a": rng.integers(-(2**62), 2**62, n),
        "b": rng.normal(size=n),
        "c": rng.normal(size=n).astype(np.float32),
        "d": rng.integers(-(2**31), 2**31 - 1, n).astype(np.int32),
        "e": rng.integers(-(2**15), 2**15 - 1, n).astype(np.int16),
        "f": rng.integers(0, 2, n).astype(bool),
    }
    cols["b"][rng.random(n) < 0.2] = np.nan  # becomes NULL
    cols["c"][rng.random(n) < 0.1] = np.nan
    types = {"a": "int8", "b": "float8", "c": "float4", "d": "int4", "e": "int2", "f": "bool"}
    written = copy_columns(conn, "t", cols, types, nullable={"b": True, "c": True})
    assert written == n
    got = conn.execute("SELECT a, b, c, d, e, f FROM t").fetchall()
    back = {row[0]: row for row in got}
    assert len(back) == n
    for i in rng.choice(n, 500, replace=False):
        a, b, c, d, e, f = back[int(cols["a"][i])]
        assert (b is None) == bool(np.isnan(cols["b"][i]))
        if b is not None:
            assert b == cols["b"][i]
        assert (c is None) == bool(np.isnan(cols["c"][i]))
        if c is not None:
            assert np.float32(c) == cols["c"][i]
        assert (d, e, f) == (cols["d"][i], cols["e"][i], bool(cols["f"][i]))
    assert conn.execute("SELECT count(*) FROM t WHERE b IS NULL").fetchone()[0] == np.isnan(cols["b"]).sum()


def test_nan_in_not_null_column_is_refused():
    with pytest.raises(LoadError, match="NOT NULL"):
        encode_binary_copy([np.array([1.0, np.nan])], ["float8"], [False])


def test_refcat_round_trip(conn):
    cols = synthetic_refcat(20_000, seed=11, first_id=10_000_000)
    cols["parallax"][::7] = np.nan  # missing parallaxes are NULL, not NaN
    before = _count(conn)
    assert load_refcat(conn, cols) == 20_000
    assert _count(conn) == before + 20_000
    rows = conn.execute(
        "SELECT source_id, hpx29, ra, dec, pmra, parallax, g_mag FROM jsp.refcat "
        "WHERE source_id >= 10000000 AND source_id < 10020000 ORDER BY source_id").fetchall()
    assert len(rows) == 20_000
    arr = np.array([(r[0], r[2], r[3], r[4], r[6]) for r in rows])
    np.testing.assert_array_equal(arr[:, 0], cols["source_id"])
    np.testing.assert_array_equal(arr[:, 1], cols["ra"])
    np.testing.assert_array_equal(arr[:, 2], cols["dec"])
    np.testing.assert_array_equal(arr[:, 3], cols["pmra"])
    np.testing.assert_array_equal(arr[:, 4], cols["g_mag"])
    par = np.array([np.nan if r[5] is None else r[5] for r in rows])
    np.testing.assert_array_equal(np.isnan(par), np.isnan(cols["parallax"]))
    # hpx29 computed in the loader agrees with q3c's own idea of the position:
    # every row lies in the partition its hpx29 says, and hpx29 is consistent
    # with the position (checked against healpy in test_healpix).
    wrong = conn.execute(
        "SELECT count(*) FROM jsp.refcat WHERE source_id >= 10000000 AND source_id < 10020000 "
        "AND NOT (hpx29 >= 0 AND hpx29 < 12 * 4::numeric ^ 29)").fetchone()[0]
    assert wrong == 0


def test_bad_row_in_the_middle_loads_nothing(conn):
    cols = synthetic_refcat(10_000, seed=12, first_id=20_000_000)
    cols["dec"][5_000] = 95.0
    before = _count(conn)
    with pytest.raises(LoadError, match=r"row 5000 .*dec=95"):
        load_refcat(conn, cols)
    assert _count(conn) == before


def test_failure_inside_copy_rolls_back_everything(conn):
    """A duplicate key met by PostgreSQL mid-COPY (after many rows went in) aborts all of it."""
    cols = synthetic_refcat(30_000, seed=13, first_id=30_000_000)
    for c in cols:  # row 20000 repeats row 10
        cols[c][20_000] = cols[c][10]
    before = _count(conn)
    with pytest.raises(LoadError, match="nothing was loaded.*duplicate key"):
        load_refcat(conn, cols)
    # the caller's transaction is still usable and holds none of the rows
    assert _count(conn) == before
    assert _count(conn, "source_id >= 30000000 AND source_id < 30030000") == 0


def test_loss_of_connection_mid_load_leaves_nothing(dsn):
    cols = synthetic_refcat(200_000, seed=14, first_id=40_000_000)
    victim = psycopg.connect(dsn)
    pid = victim.info.backend_pid
    calls = []

    def kill_after_first_chunk(k):
        calls.append(k)
        if len(calls) == 1:
            with psycopg.connect(dsn, autocommit=True) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", (pid,))

    with pytest.raises((LoadError, psycopg.OperationalError)):
        load_refcat(victim, cols, progress=kill_after_first_chunk)
        victim.commit()
    victim.close()
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT count(*) FROM jsp.refcat WHERE source_id BETWEEN 40000000 AND 40200000"
                         ).fetchone()[0] == 0


def test_unknown_and_missing_columns_are_refused(conn):
    cols = synthetic_refcat(10, seed=1)
    with pytest.raises(LoadError, match="unknown"):
        load_refcat(conn, {**cols, "gmag": cols["g_mag"]})
    del cols["ra_err_mas"]
    with pytest.raises(LoadError, match="required"):
        load_refcat(conn, cols)
    assert set(REFCAT_COLUMNS) >= {"hpx29", "source_id"}
