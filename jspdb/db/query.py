"""Spatial queries on HEALPix-partitioned catalogs.

A cone becomes (1) the ``hpx29`` ranges of the HEALPix pixels it touches, which
the planner uses to prune partitions, and (2) a ``q3c_radial_query`` predicate
served by the q3c index inside each partition. The ranges are taken at an
order matched to the radius (never coarser than the partitions): they prune
the same partitions and give the planner a selective ``hpx29`` range even
before statistics exist (0.6-0.8x of the partition-order ranges' time on a
freshly loaded table, bench/bench_foundation.py). Everything is a bound
parameter: user input is never pasted into SQL.
"""

from __future__ import annotations

import math

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from jspdb.healpix import cone_ranges

__all__ = ["cone_sql", "images_in_cone", "images_in_tile", "partition_order", "range_order", "refcat_cone"]


#: Partition orders already looked up, by (server, database, table): a table's
#: partitioning never changes once created, and the lookup costs ~0.5 ms a query.
_ORDERS: dict[tuple[str, str, str], int] = {}

#: Finest order used for cone ranges (order 14 pixels are ~13"): finer adds
#: ranges without pruning anything more.
MAX_RANGE_ORDER = 14


def partition_order(conn: psycopg.Connection, table: str) -> int:
    """HEALPix order of the partitions of ``table`` (``schema.name``), cached."""
    key = (f"{conn.info.host}:{conn.info.port}", conn.info.dbname, table)
    if key not in _ORDERS:
        order = conn.execute("SELECT jsp.hpx_partition_order(%s::regclass)", (table,)).fetchone()[0]
        if order is None:
            raise ValueError(f"{table} has no HEALPix partitions")
        _ORDERS[key] = int(order)
    return _ORDERS[key]


def range_order(radius: float, part_order: int) -> int:
    """Order of the cone ranges: pixels about the size of the cone, capped."""
    # a pixel at order k spans ~58.6 deg / 2**k
    k = int(math.floor(math.log2(58.6 / max(radius, 1e-9))))
    return max(part_order, min(k, MAX_RANGE_ORDER))


def cone_sql(
    table: str, ra: float, dec: float, radius: float, order: int, columns: str | sql.Composable = "*"
) -> tuple[sql.Composed, list]:
    """SQL and parameters selecting rows of ``table`` within a cone.

    Parameters
    ----------
    table
        Qualified table name (an identifier of ours, not user text).
    ra, dec
        Centre, degrees.
    radius
        Radius, degrees.
    order
        Partition order of ``table``.
    columns
        Select list.

    Returns
    -------
    (psycopg.sql.Composed, list)
        Query and its parameters.
    """
    ranges = cone_ranges(ra, dec, radius, range_order(radius, order))
    schema, _, name = table.partition(".")
    cols = sql.SQL(columns) if isinstance(columns, str) else columns
    range_pred = sql.SQL(" OR ").join(
        [sql.SQL("(hpx29 >= %s AND hpx29 < %s)")] * len(ranges)
    )
    q = sql.SQL("SELECT {cols} FROM {tbl} WHERE ({ranges}) AND q3c_radial_query(ra, dec, %s, %s, %s)").format(
        cols=cols, tbl=sql.Identifier(schema, name), ranges=range_pred
    )
    params: list = [int(x) for pair in ranges for x in pair] + [float(ra) % 360.0, float(dec), float(radius)]
    return q, params


def refcat_cone(
    conn: psycopg.Connection, ra: float, dec: float, radius: float, table: str = "jsp.refcat"
) -> list[dict]:
    """Reference-catalog rows within ``radius`` degrees of (ra, dec), nearest first."""
    order = partition_order(conn, table)
    q, params = cone_sql(table, ra, dec, radius, order)
    q = sql.SQL("{} ORDER BY q3c_dist(ra, dec, %s, %s)").format(q)
    with conn.cursor(row_factory=dict_row) as cur:
        # Never server-prepare: a prepared statement's 6th run makes PostgreSQL build a
        # generic plan over every partition (~1 s and a lock per partition and index).
        cur.execute(q, [*params, float(ra) % 360.0, float(dec)], prepare=False)
        return cur.fetchall()




def images_in_cone(
    conn: psycopg.Connection, ra: float, dec: float, radius: float, bands: list[str] | None = None
) -> list[dict]:
    """Images whose footprint overlaps a cone (GiST index on ``footprint``).

    Parameters
    ----------
    ra, dec, radius
        Cone centre and radius, degrees.
    bands
        Optional band names (``r``, ``VIS``, ``F158``) to keep.
    """
    q = (
        "SELECT i.image_id, s.name AS survey, b.name AS band, i.kind, i.obs_id, i.uri, "
        "i.ra_center, i.dec_center, i.t_min_mjd, i.exptime_s "
        "FROM jsp.image i JOIN jsp.band b USING (band_id) JOIN jsp.survey s ON s.survey_id = i.survey_id "
        "WHERE i.footprint && scircle(spoint(radians(%s), radians(%s)), radians(%s))"
    )
    params: list = [float(ra) % 360.0, float(dec), float(radius)]
    if bands:
        q += " AND b.name = ANY(%s)"
        params.append(list(bands))
    q += " ORDER BY s.survey_id, b.band_id, i.t_min_mjd"
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(q, params).fetchall()


def images_in_tile(conn: psycopg.Connection, order: int, ipix: int) -> list[dict]:
    """Images that touch one processing tile (recorded at ingest)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT i.image_id, s.name AS survey, b.name AS band, i.obs_id, i.uri FROM jsp.image_tile t "
            "JOIN jsp.image i USING (image_id) JOIN jsp.band b USING (band_id) "
            "JOIN jsp.survey s ON s.survey_id = i.survey_id "
            "WHERE t.tile_order = %s AND t.tile_ipix = %s ORDER BY i.image_id", (order, ipix)).fetchall()
