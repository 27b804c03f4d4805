"""Cone search with HEALPix ranges: pruning shown by EXPLAIN, rows equal brute force."""

import json

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from jspdb.db.query import cone_sql, partition_order, refcat_cone
from jspdb.healpix import tile_index
from jspdb.refcat import load_refcat, synthetic_refcat


@pytest.fixture
def loaded(conn):
    """Rows in three regions: an ordinary field, across RA = 0, near the north pole."""
    parts = [
        synthetic_refcat(20_000, seed=1, ra_range=(148.0, 152.0), dec_range=(0.0, 4.0), first_id=1),
        synthetic_refcat(10_000, seed=2, ra_range=(358.0, 362.0), dec_range=(-2.0, 2.0), first_id=100_001),
        synthetic_refcat(10_000, seed=3, ra_range=(0.0, 360.0), dec_range=(88.5, 90.0), first_id=200_001),
    ]
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    conn.execute("DELETE FROM jsp.refcat")
    load_refcat(conn, cols)
    conn.execute("ANALYZE jsp.refcat")
    cols["ra"] = cols["ra"] % 360
    return cols


def _scanned_partitions(conn, q, params):
    plan = conn.execute(b"EXPLAIN (FORMAT JSON) " + q.as_bytes(conn), params).fetchone()[0]

    def rels(node):
        out = [node["Relation Name"]] if "Relation Name" in node else []
        for c in node.get("Plans", []):
            out += rels(c)
        return out

    return set(rels(plan[0]["Plan"])), json.dumps(plan)


@pytest.mark.parametrize(
    ("ra", "dec", "radius"),
    [(150.0, 2.0, 2 / 60), (150.0, 2.0, 0.5), (0.02, 0.0, 0.2), (359.95, 1.0, 0.3), (10.0, 89.9, 0.4),
     (150.0, 2.0, 1 / 3600)],
)
def test_cone_equals_brute_force_and_prunes(conn, loaded, ra, dec, radius):
    rows = refcat_cone(conn, ra, dec, radius)
    got = {r["source_id"] for r in rows}
    sep = SkyCoord(loaded["ra"], loaded["dec"], unit="deg").separation(SkyCoord(ra, dec, unit="deg")).deg
    expected = set(loaded["source_id"][sep <= radius].tolist())
    # q3c's distance is exact to ~1e-12 deg: only points on the rim could differ
    rim = set(loaded["source_id"][np.abs(sep - radius) < 1e-9].tolist())
    assert got ^ expected <= rim
    assert len(expected) > 0 or radius < 1 / 600
    if rows:
        d = [r_ for r_ in rows]
        dist = SkyCoord([r["ra"] for r in d], [r["dec"] for r in d], unit="deg").separation(
            SkyCoord(ra, dec, unit="deg")).deg
        assert np.all(np.diff(dist) >= -1e-12)  # nearest first

    order = partition_order(conn, "jsp.refcat")
    q, params = cone_sql("jsp.refcat", ra, dec, radius, order)
    scanned, plan = _scanned_partitions(conn, q, params)
    # the planner keeps only partitions whose pixel touches the cone ...
    kept = {int(name.rsplit("_", 1)[1]) for name in scanned}
    assert all(name.startswith(f"refcat_p{order}_") for name in scanned), plan
    assert len(kept) <= 4 or radius >= 0.4
    assert len(kept) < 12 * 4**order / 4
    # ... and every partition holding a matching row is among them
    hit = set(tile_index(loaded["ra"][sep <= radius], loaded["dec"][sep <= radius], order).tolist())
    assert hit <= kept
    # and uses the q3c index inside them
    assert "q3c_ang2ipix" in plan


def test_unpruned_query_would_scan_everything(conn, loaded):
    """The control: without the HEALPix ranges PostgreSQL visits every partition."""
    order = partition_order(conn, "jsp.refcat")
    plan = conn.execute(
        "EXPLAIN (FORMAT JSON) SELECT * FROM jsp.refcat WHERE q3c_radial_query(ra, dec, 150, 2, 0.01)"
    ).fetchone()[0]
    assert json.dumps(plan).count('"Relation Name"') == 12 * 4**order
