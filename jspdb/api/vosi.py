"""VOSI documents: capabilities and tables (generated from TAP_SCHEMA)."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from psycopg import sql

from jspdb.api.formats import _FORMATS
from jspdb.api.limits import ApiSettings
from jspdb.api.service import QueryService
from jspdb.api.users import Principal

__all__ = ["capabilities_xml", "tables_xml"]


def capabilities_xml(base: str, api: ApiSettings) -> str:
    """VOSI capabilities of the TAP service at ``base``."""
    anon, user = api.anonymous(), api.user()
    formats = {f.name: f for f in _FORMATS.values()}
    fmts = "".join(
        f"<outputFormat><mime>{escape(f.mime)}</mime><alias>{escape(f.name)}</alias></outputFormat>"
        for f in formats.values())
    cap = ""
    for kind, path in (("capabilities", "capabilities"), ("availability", "availability"), ("tables", "tables")):
        std = {"capabilities": "ivo://ivoa.net/std/VOSI#capabilities",
               "availability": "ivo://ivoa.net/std/VOSI#availability",
               "tables": "ivo://ivoa.net/std/VOSI#tables-1.1"}[kind]
        cap += (f'<capability standardID="{std}"><interface xsi:type="vs:ParamHTTP">'
                f'<accessURL use="full">{escape(base)}/{path}</accessURL></interface></capability>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
        'xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0">'
        '<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">'
        '<interface xsi:type="vs:ParamHTTP" role="std" version="1.1">'
        f'<accessURL use="base">{escape(base)}</accessURL></interface>'
        '<language><name>ADQL</name><version ivo-id="ivo://ivoa.net/std/ADQL#v2.1">2.1</version>'
        "<description>ADQL 2.1 translated to PostgreSQL with pg_sphere and q3c</description>"
        '<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-udf">'
        "<feature><form>ivo_healpix_index(order INTEGER, ra DOUBLE, dec DOUBLE) -> BIGINT</form>"
        "<description>Nested HEALPix index of a position at an order</description></feature>"
        "</languageFeatures>"
        '<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">'
        + "".join(f"<feature><form>{g}</form></feature>" for g in
                  ("POINT", "CIRCLE", "POLYGON", "BOX", "CONTAINS", "INTERSECTS", "DISTANCE", "AREA",
                   "COORD1", "COORD2"))
        + "</languageFeatures></language>"
        + fmts
        + '<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>'
        f"<retentionPeriod><default>{api.job_lifetime_s}</default><hard>{api.job_lifetime_s}</hard></retentionPeriod>"
        f"<executionDuration><default>{anon.async_timeout_s}</default><hard>{user.async_timeout_s}</hard>"
        "</executionDuration>"
        f'<outputLimit><default unit="row">{anon.default_maxrec}</default><hard unit="row">{user.max_rows}</hard>'
        "</outputLimit>"
        '<uploadLimit><hard unit="byte">20000000</hard></uploadLimit>'
        "</capability>" + cap + "</vosi:capabilities>"
    )


def tables_xml(service: QueryService, principal: Principal, only: str | None = None) -> str | None:
    """VOSI tableset of what ``principal`` may query (or one table, ``only``)."""
    with service.pool.connection() as conn:
        try:
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(principal.role)))
            schemas = conn.execute("SELECT schema_name, description FROM tap_schema.schemas "
                                   "ORDER BY schema_index, schema_name").fetchall()
            tables = conn.execute("SELECT schema_name, table_name, table_type, description FROM tap_schema.tables "
                                  "ORDER BY table_index, table_name").fetchall()
            cols = conn.execute("SELECT table_name, column_name, description, unit, ucd, utype, datatype, "
                                "arraysize, xtype, principal, indexed, std FROM tap_schema.columns "
                                "ORDER BY table_name, column_index").fetchall()
            keys = conn.execute("SELECT k.key_id, k.from_table, k.target_table, c.from_column, c.target_column "
                                "FROM tap_schema.keys k JOIN tap_schema.key_columns c USING (key_id)").fetchall()
        finally:
            conn.rollback()
    by_table: dict[str, list[str]] = {}
    for t, c, desc, unit, ucd, utype, dt, asz, xt, princ, idx, std in cols:
        flags = "".join(f"<flag>{f}</flag>" for f, on in (("indexed", idx), ("principal", princ), ("std", std)) if on)
        by_table.setdefault(t, []).append(
            f"<column><name>{escape(c)}</name>"
            + (f"<description>{escape(desc)}</description>" if desc else "")
            + (f"<unit>{escape(unit)}</unit>" if unit else "") + (f"<ucd>{escape(ucd)}</ucd>" if ucd else "")
            + (f"<utype>{escape(utype)}</utype>" if utype else "")
            + f'<dataType xsi:type="vs:VOTableType"{" arraysize=" + quoteattr(asz) if asz else ""}'
            f'{" extendedType=" + quoteattr(xt) if xt else ""}>{dt}</dataType>{flags}</column>')
    fks: dict[str, list[str]] = {}
    for _, ft, tt, fc, tc in keys:
        fks.setdefault(ft, []).append(f"<foreignKey><targetTable>{escape(tt)}</targetTable><fkColumn>"
                                      f"<fromColumn>{escape(fc)}</fromColumn><targetColumn>{escape(tc)}"
                                      "</targetColumn></fkColumn></foreignKey>")
    out = []
    for s, sdesc in schemas:
        parts = []
        for ts, t, ttype, tdesc in tables:
            if ts != s or (only and t.lower() != only):
                continue
            parts.append(f'<table type="{ttype}"><name>{escape(t)}</name>'
                         + (f"<description>{escape(tdesc)}</description>" if tdesc else "")
                         + "".join(by_table.get(t, [])) + "".join(fks.get(t, [])) + "</table>")
        if only:
            if parts:
                return ('<?xml version="1.0" encoding="UTF-8"?>\n<vosi:table '
                        'xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
                        'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
                        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"' + parts[0][len("<table"):]
                        ).replace("</table>", "</vosi:table>")
            continue
        out.append(f"<schema><name>{escape(s)}</name>"
                   + (f"<description>{escape(sdesc)}</description>" if sdesc else "") + "".join(parts) + "</schema>")
    if only:
        return None  # no such table (for this caller)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<vosi:tableset '
            'xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
            'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' + "".join(out) + "</vosi:tableset>")
