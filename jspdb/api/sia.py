"""SIA v2 query over ``ivoa.obscore``: POS, BAND, TIME, COLLECTION, CALIB, ...

Every constraint becomes a predicate with bound values (nothing of the
request is pasted into SQL); POS uses pg_sphere overlap (``&&``) with the
footprint, served by the GiST index on ``jsp.image.footprint``.
"""

from __future__ import annotations

from jspdb.adql import AdqlError
from jspdb.api.formats import ResultSet
from jspdb.api.service import QueryService
from jspdb.api.users import Principal

__all__ = ["sia_query"]


def _floats(value: str, n: int | None, what: str) -> list[float]:
    try:
        vals = [float(x) for x in value.split()]
    except ValueError as exc:
        raise AdqlError(f"{what}: numbers expected, got {value!r}") from exc
    if n is not None and len(vals) != n:
        raise AdqlError(f"{what}: {n} numbers expected, got {len(vals)}")
    return vals


def _pos(value: str) -> tuple[str, list]:
    shape, _, rest = value.strip().partition(" ")
    shape = shape.upper()
    if shape == "CIRCLE":
        ra, dec, r = _floats(rest, 3, "POS=CIRCLE")
        return ("s_region && scircle(spoint(radians(%s), radians(%s)), radians(%s))", [ra, dec, r])
    if shape == "RANGE":
        ra0, ra1, dec0, dec1 = _floats(rest.replace("-Inf", "-1e300").replace("+Inf", "1e300")
                                       .replace("Inf", "1e300"), 4, "POS=RANGE")
        ra0, ra1 = max(ra0, 0.0), min(ra1, 360.0)
        dec0, dec1 = max(dec0, -90.0), min(dec1, 90.0)
        return ("s_region && sbox(spoint(radians(%s), radians(%s)), spoint(radians(%s), radians(%s)))",
                [ra0, dec0, ra1, dec1])
    if shape == "POLYGON":
        v = _floats(rest, None, "POS=POLYGON")
        if len(v) < 6 or len(v) % 2:
            raise AdqlError("POS=POLYGON needs at least 3 (ra, dec) pairs")
        lit = "{" + ",".join(f"({a!r}d,{d!r}d)" for a, d in zip(v[::2], v[1::2], strict=True)) + "}"
        return ("s_region && spoly(%s)", [lit])
    raise AdqlError(f"POS must be CIRCLE, RANGE or POLYGON, got {shape!r}")


def _interval(col_lo: str, col_hi: str, value: str, what: str) -> tuple[str, list]:
    vals = value.replace("-Inf", "-1e300").replace("+Inf", "1e300").replace("Inf", "1e300").split()
    v = _floats(" ".join(vals), None, what)
    if len(v) == 1:
        v = [v[0], v[0]]
    if len(v) != 2:
        raise AdqlError(f"{what}: one value or an interval expected")
    return (f"({col_lo} <= %s AND {col_hi} >= %s)", [v[1], v[0]])


def sia_query(service: QueryService, principal: Principal, params: dict[str, list[str]], maxrec: int,
              timeout_ms: int) -> ResultSet:
    """Run an SIA v2 query (parameters upper-cased, each a list of values)."""
    where: list[str] = []
    values: list = []

    def any_of(preds: list[tuple[str, list]]) -> None:
        where.append("(" + " OR ".join(p for p, _ in preds) + ")")
        for _, v in preds:
            values.extend(v)

    if "POS" in params:
        any_of([_pos(v) for v in params["POS"]])
    if "BAND" in params:
        any_of([_interval("em_min", "em_max", v, "BAND") for v in params["BAND"]])
    if "TIME" in params:
        any_of([_interval("t_min", "t_max", v, "TIME") for v in params["TIME"]])
    for key, col in (("COLLECTION", "obs_collection"), ("FACILITY", "facility_name"),
                     ("INSTRUMENT", "instrument_name"), ("DPTYPE", "dataproduct_type"), ("ID", "obs_publisher_did")):
        if key in params:
            any_of([(f"{col} = %s", [v]) for v in params[key]])
    if "CALIB" in params:
        any_of([("calib_level = %s", [int(v)]) for v in params["CALIB"]])
    for key, col in (("EXPTIME", "t_exptime"), ("FOV", "s_fov"), ("SPATRES", "s_resolution")):
        if key in params:
            any_of([_interval(col, col, v, key) for v in params[key]])
    text = "SELECT * FROM ivoa.obscore" + (" WHERE " + " AND ".join(where) if where else "")
    return service.run_sql(text, values, principal, maxrec, timeout_ms)
