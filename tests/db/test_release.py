"""Releases: one schema each, partitioned catalogs, publish in one step."""

import psycopg
import pytest

from jspdb.db.release import create_release, list_releases, publish_release
from jspdb.errors import ReleaseError


def test_create_release_builds_schema_and_partitions(conn):
    row = create_release(conn, "dr_t1", 1, {"note": "test"})
    assert row["state"] == "staging" and row["config"] == {"note": "test"}
    for table in ("object", "forced_photometry"):
        n = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass",
                         (f"dr_t1.{table}",)).fetchone()[0]
        assert n == 48
        assert conn.execute("SELECT jsp.hpx_partition_order(%s::regclass)", (f"dr_t1.{table}",)).fetchone()[0] == 1
    # every partition of object carries the q3c index
    idx = conn.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'dr_t1' AND tablename LIKE 'object_p1_%' "
        "AND indexdef LIKE '%q3c_ang2ipix%'").fetchone()[0]
    assert idx == 48
    assert [r["name"] for r in list_releases(conn)].count("dr_t1") == 1


def test_release_rows_route_to_the_right_partition(conn):
    create_release(conn, "dr_t2", 1)
    # hpx29 of pixel 17 at order 1 starts at 17 << 56
    conn.execute("INSERT INTO dr_t2.object (object_id, hpx29, ra, dec, tile_order, tile_ipix) "
                 "VALUES (1, %s, 10, 10, 9, 0)", ((17 << 56) + 5,))
    part = conn.execute("SELECT tableoid::regclass::text FROM dr_t2.object").fetchone()[0]
    assert part == "dr_t2.object_p1_17"


def test_duplicate_and_bad_names_are_refused(conn):
    create_release(conn, "dr_t3", 0)
    with pytest.raises(ReleaseError, match="already exists"):
        create_release(conn, "dr_t3", 0)
    for bad in ("DR1", "1dr", "dr-1", "jsp", "public", "x" * 40, "dr1; DROP TABLE jsp.image"):
        with pytest.raises(ReleaseError, match="bad release name"):
            create_release(conn, bad, 0)
    assert conn.execute("SELECT to_regclass('jsp.image')").fetchone()[0] is not None


def test_publish_grants_reader_in_one_step(dsn):
    with psycopg.connect(dsn) as c:
        create_release(c, "dr_pub", 0)
        c.commit()
    try:
        with psycopg.connect(dsn) as c:
            c.execute("SET ROLE jsp_reader")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SELECT count(*) FROM dr_pub.object")
            c.rollback()
            c.execute("RESET ROLE")
            assert publish_release(c, "dr_pub")["state"] == "public"
            c.commit()
            c.execute("SET ROLE jsp_reader")
            assert c.execute("SELECT count(*) FROM dr_pub.object").fetchone()[0] == 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("INSERT INTO dr_pub.object (object_id, hpx29, ra, dec, tile_order, tile_ipix) "
                          "VALUES (1, 1, 1, 1, 9, 0)")
            c.rollback()
            with pytest.raises(ReleaseError, match="not in staging"):
                publish_release(c, "dr_pub")
    finally:
        with psycopg.connect(dsn) as c:
            c.execute("DROP SCHEMA dr_pub CASCADE")
            c.execute("DELETE FROM jsp.release WHERE name = 'dr_pub'")
