"""ADQL -> PostgreSQL translation: golden outputs and refusals (no server)."""

from __future__ import annotations

import pytest

from jspdb.adql import AdqlError, Catalog, translate
from jspdb.healpix import cone_ranges

CAT = Catalog(
    columns={
        "jsp.refcat": ["hpx29", "source_id", "ra", "dec", "g_mag", "bp_mag", "rp_mag"],
        "dr1.object": ["object_id", "hpx29", "ra", "dec", "is_point"],
        "ivoa.obscore": ["obs_id", "s_ra", "s_dec", "s_region"],
        "tap_upload.mine": ["id", "ra", "dec"],
    },
    hpx_order={"jsp.refcat": 2, "dr1.object": 2},
)


def _ranges_sql(col: str, ra: float, dec: float, r: float) -> str:
    return " OR ".join(f"({col} >= {lo} AND {col} < {hi})" for lo, hi in cone_ranges(ra, dec, r, 2))


def test_cone_becomes_healpix_ranges_and_q3c():
    tr = translate("SELECT TOP 10 source_id FROM jsp.refcat WHERE "
                   "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150.5, -2.25, 0.01)) = 1", CAT)
    assert tr.sql == ("SELECT source_id FROM jsp.refcat WHERE ((" + _ranges_sql("hpx29", 150.5, -2.25, 0.01)
                      + ") AND q3c_radial_query(ra, dec, 150.5, -2.25, 0.01)) LIMIT 10")
    assert tr.spatial_rewrites == 1


def test_cone_with_alias_and_reversed_comparison():
    tr = translate("SELECT o.object_id FROM dr1.object AS o WHERE 1 = CONTAINS(POINT('ICRS', o.ra, o.dec), "
                   "CIRCLE('ICRS', 10, 20, 0.5))", CAT)
    assert "o.hpx29 >= " in tr.sql
    assert "q3c_radial_query(o.ra, o.dec, 10.0, 20.0, 0.5)" in tr.sql


def test_same_shape_other_numbers_translate_alike():
    a = translate("SELECT ra FROM jsp.refcat WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150, 2, 0.1))=1",
                  CAT)
    b = translate("SELECT ra FROM jsp.refcat WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 30, -5, 0.2))=1",
                  CAT)
    assert "q3c_radial_query(ra, dec, 150.0, 2.0, 0.1)" in a.sql
    assert "q3c_radial_query(ra, dec, 30.0, -5.0, 0.2)" in b.sql


def test_crossmatch_becomes_q3c_join():
    tr = translate("SELECT u.id, r.source_id FROM tap_upload.mine AS u JOIN jsp.refcat AS r ON "
                   "1 = CONTAINS(POINT('ICRS', r.ra, r.dec), CIRCLE('ICRS', u.ra, u.dec, 1.0/3600))", CAT)
    assert "q3c_join(u.ra, u.dec, r.ra, r.dec, 0.0002777777777777778)" in tr.sql


def test_not_contains_is_left_alone():
    tr = translate("SELECT ra FROM jsp.refcat WHERE CONTAINS(POINT('ICRS', ra, dec), "
                   "CIRCLE('ICRS', 150, 2, 0.1)) = 0", CAT)
    assert "q3c" not in tr.sql and "!@" in tr.sql


def test_geometry_functions():
    tr = translate("SELECT DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 150, 2)) AS d, "
                   "COORD1(POINT('ICRS', ra, dec)) AS c1 FROM jsp.refcat WHERE "
                   "INTERSECTS(CIRCLE('ICRS', ra, dec, 0.1), BOX('ICRS', 150, 2, 1, 1)) = 1", CAT)
    assert "DEGREES(spoint(RADIANS(ra), RADIANS(dec)) <-> spoint(RADIANS(150.0), RADIANS(2.0)))" in tr.sql
    assert "DEGREES(long(spoint(RADIANS(ra), RADIANS(dec))))" in tr.sql
    assert "sbox(" in tr.sql and "&&" in tr.sql
    tr = translate("SELECT obs_id FROM ivoa.obscore WHERE "
                   "INTERSECTS(s_region, POLYGON('ICRS', 149, 1, 151, 1, 150, 3)) = 1", CAT)
    assert "s_region && spoly('{(149d,1.0d),(151d,1.0d),(150d,3d)}')" in tr.sql


def test_ivo_healpix_index():
    tr = translate("SELECT ivo_healpix_index(5, ra, dec) AS pix, COUNT(*) AS n FROM jsp.refcat "
                   "GROUP BY ivo_healpix_index(5, ra, dec)", CAT)
    assert tr.sql.count("healpix_nest((5)::integer, spoint(RADIANS(ra), RADIANS(dec)))") == 2


def test_top_offset_subquery_join():
    tr = translate("SELECT TOP 5 s.ra FROM (SELECT ra, dec FROM jsp.refcat WHERE g_mag < 15) AS s "
                   "ORDER BY s.ra DESC OFFSET 3", CAT)
    assert tr.sql.endswith("ORDER BY s.ra DESC OFFSET 3 LIMIT 5")
    tr = translate("SELECT r.source_id, o.object_id FROM jsp.refcat AS r JOIN dr1.object AS o "
                   "ON r.hpx29 = o.hpx29 WHERE r.g_mag < 12", CAT)
    assert "JOIN dr1.object AS o ON r.hpx29 = o.hpx29" in tr.sql


def test_string_literals_stay_literals():
    tr = translate("SELECT source_id FROM jsp.refcat WHERE source_id = 'x''; DROP TABLE jsp.refcat; --'", CAT)
    assert tr.sql == "SELECT source_id FROM jsp.refcat WHERE source_id = 'x''; DROP TABLE jsp.refcat; --'"


@pytest.mark.parametrize(("adql", "message"), [
    ("SELECT ra FROM jsp.refcat; DROP TABLE jsp.refcat", "only one statement"),
    ("SELECT ra FROM jsp.refcat; SELECT 1", "only one statement"),
    ("DROP TABLE jsp.refcat", "only SELECT"),
    ("INSERT INTO jsp.refcat (ra) VALUES (1)", "only SELECT"),
    ("DELETE FROM jsp.refcat", "only SELECT"),
    ("UPDATE jsp.refcat SET ra = 0", "only SELECT"),
    ("SELECT pg_sleep(10) FROM jsp.refcat", r"pg_sleep\(\) is not available"),
    ("SELECT lo_import('/etc/passwd') FROM jsp.refcat", r"lo_import\(\) is not available"),
    ("SELECT set_config('role', 'postgres', false) FROM jsp.refcat", r"set_config\(\) is not available"),
    ("SELECT nonesuch FROM jsp.refcat", "unknown column 'nonesuch' in table jsp.refcat"),
    ("SELECT ra FROM jsp.api_token", "unknown table 'jsp.api_token'"),
    ("SELECT ra FROM jsp.refcat WHERE", "syntax error at line 1"),
    ("SELECT ra FROM jsp.refcat WHERE ra > 'unterminated", "unterminated quoted text"),
    ("", "empty query"),
])
def test_refusals_point_at_the_problem(adql, message):
    with pytest.raises(AdqlError, match=message):
        translate(adql, CAT)


def test_syntax_error_position():
    with pytest.raises(AdqlError, match=r"syntax error at line 2, column 6 near 'jsp'"):
        translate("SELECT ra\nFORM jsp.refcat", CAT)


def test_cone_ranges_carry_over_inner_joins():
    tr = translate("SELECT o.object_id, f.flux_njy FROM dr1.object AS o JOIN dr1.forced_photometry AS f "
                   "ON f.object_id = o.object_id AND f.hpx29 = o.hpx29 WHERE "
                   "CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', 150, 2, 0.01)) = 1",
                   Catalog(columns={"dr1.object": ["object_id", "hpx29", "ra", "dec"],
                                    "dr1.forced_photometry": ["object_id", "hpx29", "flux_njy"]},
                           hpx_order={"dr1.object": 2, "dr1.forced_photometry": 2}))
    assert f"AND ({_ranges_sql('f.hpx29', 150, 2, 0.01)})" in tr.sql
    tr = translate("SELECT r.source_id, o.object_id FROM jsp.refcat AS r JOIN dr1.object AS o ON "
                   "1 = CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', r.ra, r.dec, 0.001)) WHERE "
                   "1 = CONTAINS(POINT('ICRS', r.ra, r.dec), CIRCLE('ICRS', 150, 2, 0.01))", CAT)
    assert (f"(({_ranges_sql('o.hpx29', 150, 2, 0.011)}) AND q3c_radial_query(o.ra, o.dec, 150.0, 2.0, 0.011) "
            "AND q3c_join(r.ra, r.dec, o.ra, o.dec, 0.001))") in tr.sql
    # An outer join must keep its unmatched rows: nothing is carried over.
    tr = translate("SELECT r.source_id, o.object_id FROM jsp.refcat AS r LEFT JOIN dr1.object AS o ON "
                   "1 = CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', r.ra, r.dec, 0.001)) WHERE "
                   "1 = CONTAINS(POINT('ICRS', r.ra, r.dec), CIRCLE('ICRS', 150, 2, 0.01))", CAT)
    assert "o.hpx29" not in tr.sql


def test_distance_below_radius_is_a_cone_too():
    tr = translate("SELECT source_id FROM jsp.refcat WHERE "
                   "DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 150.5, -2.25)) < 0.01", CAT)
    assert tr.sql == ("SELECT source_id FROM jsp.refcat WHERE ((" + _ranges_sql("hpx29", 150.5, -2.25, 0.01)
                      + ") AND q3c_radial_query(ra, dec, 150.5, -2.25, 0.01))")


def test_functions_the_grammar_lacks():
    tr = translate("SELECT LOWER(obs_id) AS a, upper(obs_id) AS b, AREA(CIRCLE('ICRS', 1, 2, 3)) AS c "
                   "FROM ivoa.obscore", CAT)
    assert tr.sql.startswith("SELECT LOWER(obs_id) AS a, UPPER(obs_id) AS b, "
                             "DEGREES(DEGREES(area(scircle(spoint(RADIANS(1.0), RADIANS(2)), RADIANS(3)))))")
