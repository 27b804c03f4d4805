"""ADQL 2.1 to PostgreSQL (pg_sphere + q3c), safely.

The work is done in four passes; user text is never pasted into SQL:

1. `lex` splits the ADQL into tokens (strings, quoted identifiers, numbers,
   words, operators). Statement chains (``;``) are refused, comments
   dropped, and ADQL functions the grammar lacks (``ivo_healpix_index``,
   ``LOWER``, ``UPPER``) renamed to placeholders it accepts as
   user-defined functions.
2. queryparser's ADQL grammar parses the query and writes PostgreSQL with
   pg_sphere geometry (``POINT`` -> ``spoint``, ``CONTAINS`` -> ``@``, ...).
   Anything that is not a single ``SELECT`` is a syntax error there. Parses
   are cached by query *shape* (numeric literals abstracted away): ANTLR's
   Python runtime needs ~200 ms per parse, the cache < 1 ms.
3. The output is lexed again: placeholders become PostgreSQL
   (``healpix_nest``, ``LOWER``, ``long``/``lat`` for ``COORD1/2``, a circle
   for ``DISTANCE(...) < r``); every function call must be on an allow-list
   (no ``pg_sleep``, ``lo_import``, ``set_config``, ...); every table must be
   in TAP_SCHEMA (for the caller) and every column in its table.
4. Cone and crossmatch predicates on catalog positions are rewritten: a
   ``CONTAINS(POINT(ra, dec), CIRCLE(a, b, r)) = 1`` on a table with
   ``hpx29`` partitions becomes the ``hpx29`` ranges of the cone (partition
   pruning) and ``q3c_radial_query`` (the q3c index in each partition), the
   same predicates as `jspdb.db.query.cone_sql`; a circle centred on another
   table's columns becomes ``q3c_join``, and in inner joins the cone's
   ranges are carried to the tables joined to the coned one (see
   `_rewrite_cones`).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from jspdb.errors import JspdbError
from jspdb.healpix import cone_ranges

__all__ = ["AdqlError", "Catalog", "Translation", "lex", "mask_strings", "translate", "unmask_strings"]


class AdqlError(JspdbError):
    """An ADQL query was refused: syntax error, unknown table or column,
    forbidden construct. The message points at the problem."""


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")*")
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op><>|!=|<=|>=|\|\||!@|<->|::|[-+*/%(),.;<>=@&|!~^:?\[\]{}#\\$`])
    """,
    re.VERBOSE,
)

#: Functions the translated SQL may call (lower case): ADQL's own, what
#: queryparser emits for them, and side-effect-free PostgreSQL built-ins.
ALLOWED_FUNCTIONS = frozenset(
    """
    abs ceiling ceil degrees exp floor log log10 ln mod pi power radians sqrt rand random round
    truncate trunc sign acos asin atan atan2 cos cot sin tan greatest least
    avg count max min sum stddev variance stddev_samp stddev_pop var_samp var_pop
    lower upper trim length char_length substring position coalesce nullif concat
    spoint scircle spoly sbox spath sline area square_degrees long lat center radius diameter npoints
    q3c_radial_query q3c_join q3c_dist q3c_ang2ipix healpix_nest
    exists in
    """.split()
)
#: Words followed by "(" that are SQL syntax, not function calls.
_SYNTAX_WORDS = frozenset(
    "select from where and or not in exists as on join using values any all some between cast "
    "over filter within case when then else end is null like ilike distinct".split()
)

_NUM = r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COL = r"(?:[A-Za-z_]\w*\.)?[A-Za-z_]\w*"
_CONE = re.compile(
    rf"spoint\(RADIANS\((?P<ra>{_COL})\), RADIANS\((?P<dec>{_COL})\)\) @ "
    rf"scircle\(spoint\(RADIANS\((?P<a>{_NUM}|{_COL})\), RADIANS\((?P<b>{_NUM}|{_COL})\)\), "
    rf"RADIANS\((?P<r>{_NUM})\)\)"
)
_HPX_PLACEHOLDER = "jsp_ivo_healpix_index"
#: ADQL functions queryparser's grammar lacks, passed through it under
#: names it takes for user-defined functions, and mapped back in pass 3.
_PLACEHOLDERS = {"ivo_healpix_index": _HPX_PLACEHOLDER, "lower": "jsp_adql_lower", "upper": "jsp_adql_upper"}
_BACK = {"jsp_adql_lower": "LOWER", "jsp_adql_upper": "UPPER"}


@dataclass
class Catalog:
    """What the translator needs to know of TAP_SCHEMA, for one caller.

    Attributes
    ----------
    columns
        ``schema.table`` (lower case) -> its column names.
    hpx_order
        ``schema.table`` -> HEALPix partition order, for tables partitioned on
        ``hpx29``.
    """

    columns: dict[str, list[str]]
    hpx_order: dict[str, int] = field(default_factory=dict)


@dataclass
class Translation:
    """A translated query.

    Attributes
    ----------
    sql
        PostgreSQL text (no trailing ``;``).
    tables
        Tables the query reads (``schema.table``).
    spatial_rewrites
        How many cone/crossmatch predicates were rewritten for the indexes.
    """

    sql: str
    tables: list[str]
    spatial_rewrites: int = 0


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def lex(text: str) -> list[_Tok]:
    """Split ADQL (or translated SQL) into tokens, whitespace dropped.

    Raises
    ------
    AdqlError
        On a character no ADQL token starts with, or an unterminated string.
    """
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            snippet = text[pos:pos + 20]
            if text[pos] in "'\"":
                raise AdqlError(f"unterminated quoted text at character {pos + 1}: {snippet!r}")
            raise AdqlError(f"unexpected character {text[pos]!r} at character {pos + 1}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    return out


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _prepare(adql: str) -> str:
    """Pass 1: refuse chains and comments, rename extension functions."""
    if not adql or not adql.strip():
        raise AdqlError("empty query")
    toks = lex(adql)
    while toks and toks[-1].text == ";":
        toks.pop()  # one trailing ";" is harmless; anything after it is not
    for t in toks:
        if t.text == ";":
            line, col = _line_col(adql, t.pos)
            raise AdqlError(f"only one statement per query: ';' at line {line}, column {col}")
    if not toks or toks[0].text.upper() != "SELECT":
        first = toks[0].text if toks else ""
        raise AdqlError(f"only SELECT queries are allowed (query starts with {first!r})")
    renames = {i: _PLACEHOLDERS[t.text.lower()] for i, t in enumerate(toks)
               if t.kind == "word" and t.text.lower() in _PLACEHOLDERS
               and i + 1 < len(toks) and toks[i + 1].text == "("}
    return _splice(adql, toks, renames)


def _splice(text: str, toks: list[_Tok], repl: dict[int, str], drop_comments: bool = True,
            spans: dict[int, tuple[int, str]] | None = None) -> str:
    """Rebuild ``text`` from its tokens, replacing some of them.

    ``repl`` maps a token index to its replacement; ``spans`` maps the index
    of a first token to (index of the last token, replacement of the run).
    Text between tokens (whitespace) and string literals are kept verbatim.
    """
    spans = spans or {}
    out: list[str] = []
    prev_end = 0
    i = 0
    while i < len(toks):
        t = toks[i]
        gap = text[prev_end:t.pos]
        out.append(gap if gap or not out else "")
        if i in spans:
            last, text_ = spans[i]
            out.append(text_)
            prev_end = toks[last].pos + len(toks[last].text)
            i = last + 1
            continue
        if t.kind == "comment" and drop_comments:
            out.append(" ")
        else:
            out.append(repl.get(i, t.text))
        prev_end = t.pos + len(t.text)
        i += 1
    return "".join(out)


def _args(toks: list[_Tok], open_idx: int) -> tuple[list[list[_Tok]], int]:
    """Split the arguments of the call whose "(" is at ``open_idx``."""
    depth, args, cur = 0, [], []
    for i in range(open_idx, len(toks)):
        t = toks[i]
        if t.text in "([{" and t.kind == "op":
            depth += 1
            if depth == 1:
                continue
        elif t.text in ")]}" and t.kind == "op":
            depth -= 1
            if depth == 0:
                args.append(cur)
                return args, i
        elif t.text == "," and depth == 1:
            args.append(cur)
            cur = []
            continue
        cur.append(t)
    raise AdqlError("unbalanced parentheses")


def _rewrite_calls(sql: str) -> str:
    """Pass 3a: map placeholder functions to PostgreSQL; refuse unknown functions."""
    toks = lex(sql)
    spans: dict[int, tuple[int, str]] = {}
    i = 0
    while i < len(toks):
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        is_call = t.kind == "word" and nxt is not None and nxt.text == "(" and (
            i == 0 or toks[i - 1].text != ".")
        if is_call:
            name = t.text.lower()
            if name == _HPX_PLACEHOLDER:
                args, end = _args(toks, i + 1)
                inner = [_rewrite_calls(_join(x)) for x in args]
                if len(args) == 2:  # ivo_healpix_index(order, point)
                    order, point = inner
                elif len(args) == 3:  # ivo_healpix_index(order, ra, dec)
                    order, point = inner[0], f"spoint(RADIANS({inner[1]}), RADIANS({inner[2]}))"
                else:
                    raise AdqlError("ivo_healpix_index takes (order, point) or (order, ra, dec)")
                spans[i] = (end, f"healpix_nest(({order})::integer, {point})")
                i = end + 1
                continue
            if name in _BACK:
                args, end = _args(toks, i + 1)
                spans[i] = (end, f"{_BACK[name]}({', '.join(_rewrite_calls(_join(x)) for x in args)})")
                i = end + 1
                continue
            if name == "square_degrees":  # queryparser's AREA(): steradians -> deg^2
                args, end = _args(toks, i + 1)
                spans[i] = (end, f"DEGREES(DEGREES({_rewrite_calls(_join(args[0]))}))")
                i = end + 1
                continue
            if name == "spoint_dwithin":  # DISTANCE(p, q) < r: p inside the circle (q, r)
                args, end = _args(toks, i + 1)
                if len(args) != 3:
                    raise AdqlError("DISTANCE comparison not understood")
                p, q, r = (_rewrite_calls(_join(x)) for x in args)
                spans[i] = (end, f"{p} @ scircle({q}, {r})")
                i = end + 1
                continue
            if name in ("coord1", "coord2"):
                args, end = _args(toks, i + 1)
                fn = "long" if name == "coord1" else "lat"
                spans[i] = (end, f"DEGREES({fn}({_rewrite_calls(_join(args[0]))}))")
                i = end + 1
                continue
            if name not in ALLOWED_FUNCTIONS and name not in _SYNTAX_WORDS:
                raise AdqlError(f"function {t.text}() is not available in this service")
        i += 1
    return _splice(sql, toks, {}, spans=spans)


def _join(toks: list[_Tok]) -> str:
    return _tight(" ".join(t.text for t in toks))


def _tight(sql: str) -> str:
    """Undo the spaces `_splice` puts around ``.`` and ``(`` (outside strings)."""
    masked, strings = mask_strings(sql)
    masked = re.sub(r"\s*\.\s*(?=[A-Za-z_\"*])", ".", masked)
    masked = re.sub(r"(\w)\s+\(", r"\1(", masked)
    masked = masked.replace("( ", "(").replace(" )", ")").replace(" ,", ",")
    masked = re.sub(r"\(\s*-\s+(?=[\d.])", "(-", masked)
    return unmask_strings(masked, strings)


def mask_strings(sql: str) -> tuple[str, list[str]]:
    """Replace string literals by numbered markers (so rewrites never touch them)."""
    strings: list[str] = []

    def keep(m: re.Match) -> str:
        strings.append(m.group())
        return f"'\x00{len(strings) - 1}\x00'"

    return re.sub(r"'(?:[^']|'')*'", keep, sql), strings


def unmask_strings(sql: str, strings: list[str]) -> str:
    """Undo `mask_strings`."""
    return re.sub(r"'\x00(\d+)\x00'", lambda m: strings[int(m.group(1))], sql)


def _aliases(sql: str, tables: list[str]) -> dict[str, str]:
    """alias (or bare table name) -> schema.table, from the FROM clauses."""
    out: dict[str, str] = {}
    for t in tables:
        schema, _, name = t.partition(".")
        pat = re.compile(rf"\b{re.escape(schema)}\.{re.escape(name)}\b(?:\s+(?:AS\s+)?(\w+))?", re.I)
        for m in pat.finditer(sql):
            alias = m.group(1)
            if alias and alias.upper() not in {"WHERE", "JOIN", "ON", "INNER", "LEFT", "RIGHT", "FULL",
                                               "CROSS", "NATURAL", "GROUP", "ORDER", "LIMIT", "OFFSET",
                                               "UNION", "USING", "HAVING"}:
                out[alias.lower()] = t
            out.setdefault(name.lower(), t)
            out.setdefault(t.lower(), t)
    return out


def _rewrite_cones(sql: str, catalog: Catalog, tables: list[str]) -> tuple[str, int]:
    """Pass 4: cone/crossmatch predicates -> HEALPix ranges + q3c.

    A cone on a partitioned table becomes its ``hpx29`` ranges plus
    ``q3c_radial_query``. In inner-join queries the ranges are carried to
    other partitioned tables the query ties to the coned one: through an
    ``hpx29 = hpx29`` equality (same ranges) or a crossmatch circle of
    radius r (ranges of the cone widened by r). Without that, a join would
    plan, lock and probe every partition of the other table.
    """
    masked, strings = mask_strings(sql)
    aliases = _aliases(masked, tables)
    inner_only = not re.search(r"\b(LEFT|RIGHT|FULL|OUTER|UNION|EXCEPT|INTERSECT)\b", masked, re.I)
    count = 0

    def qual_of(col: str) -> str:
        return col.rpartition(".")[0]

    def table_of(col: str) -> str | None:
        qual = qual_of(col)
        if qual:
            return aliases.get(qual.lower())
        return tables[0] if len(tables) == 1 else None

    def ranges_sql(qual: str, table: str | None, ra: float, dec: float, radius: float) -> str | None:
        order = catalog.hpx_order.get(table) if table else None
        if order is None or radius > 30:
            return None
        hcol = f"{qual}.hpx29" if qual else "hpx29"
        return "(" + " OR ".join(f"({hcol} >= {int(lo)} AND {hcol} < {int(hi)})"
                                 for lo, hi in cone_ranges(ra, dec, radius, order)) + ")"

    def numeric(m: re.Match) -> bool:
        return bool(re.fullmatch(_NUM, m.group("a")) and re.fullmatch(_NUM, m.group("b")))

    # Cones with a numeric centre, per qualifier of the point's columns.
    cones: dict[str, tuple[float, float, float]] = {}
    for m in _CONE.finditer(masked):
        if numeric(m) and float(m.group("r")) > 0:
            cones.setdefault(qual_of(m.group("ra")).lower(), (float(m.group("a")) % 360.0, float(m.group("b")),
                                                              float(m.group("r"))))
    # Qualifiers tied to each other by hpx29 = hpx29.
    same_pixel: dict[str, set[str]] = {}
    for x, y in re.findall(r"\b(\w+)\.hpx29\s*=\s*(\w+)\.hpx29\b", masked):
        same_pixel.setdefault(x.lower(), set()).add(y)
        same_pixel.setdefault(y.lower(), set()).add(x)

    def repl(m: re.Match) -> str:
        nonlocal count
        ra, dec, a, b, r = m.group("ra", "dec", "a", "b", "r")
        radius = float(r)
        if radius <= 0:
            return m.group()
        count += 1
        if not numeric(m):
            # Crossmatch: q3c_join(other_ra, other_dec, ra, dec, r) uses the
            # q3c index of the table the point belongs to.
            pred = f"q3c_join({a}, {b}, {ra}, {dec}, {radius!r})"
            cone = cones.get(qual_of(a).lower())
            if inner_only and cone is not None:
                # Every match lies within R + r of the other side's cone centre:
                # prune this side to that cone too. The constant q3c cone also
                # keeps the planner from scanning a whole partition as the outer
                # side of the join (its estimate of q3c_join alone is poor).
                wide = cone[2] + radius
                widened = ranges_sql(qual_of(ra), table_of(ra), cone[0], cone[1], wide)
                if widened:
                    return (f"({widened} AND q3c_radial_query({ra}, {dec}, {cone[0]!r}, {cone[1]!r}, {wide!r}) "
                            f"AND {pred})")
            return pred
        a_f, b_f = float(a) % 360.0, float(b)
        if not -90 <= b_f <= 90:
            raise AdqlError(f"circle centre declination {b_f} is outside [-90, 90]")
        pred = f"q3c_radial_query({ra}, {dec}, {a_f!r}, {b_f!r}, {radius!r})"
        qual = qual_of(ra)
        rng = ranges_sql(qual, table_of(ra), a_f, b_f, radius)
        if rng is None:
            return pred
        extra = ""
        if inner_only and qual:
            for other in sorted(same_pixel.get(qual.lower(), ())):
                more = ranges_sql(other, aliases.get(other.lower()), a_f, b_f, radius)
                if more:
                    extra += f" AND {more}"
        return f"({rng} AND {pred}{extra})"

    out = _CONE.sub(repl, masked)
    return unmask_strings(out, strings), count


def _syntax_error(adql: str, exc: Exception) -> AdqlError:
    errs = getattr(exc, "syntax_errors", None) or []
    if errs:
        line, col, near = errs[0][:3]
        return AdqlError(f"syntax error at line {line}, column {col + 1} near {near!r}")
    return AdqlError(f"cannot parse the query: {exc}")


def _tables_and_columns(sql: str) -> tuple[list[str], list[tuple[str, str, str]]] | None:
    from queryparser.postgresql import PostgreSQLQueryProcessor

    try:
        p = PostgreSQLQueryProcessor()
        p.set_query(sql)
        p.process_query()
    except Exception:  # the processor does not understand all it can emit
        return None
    tables = [f"{s}.{t}".lower() for s, t in p.tables if s and t]
    return tables, [(s or "", t or "", c) for s, t, c in p.columns]


#: Numeric literals are replaced by these (plus a 3-digit index) before
#: parsing, so one parse serves every query of the same shape.
_SENTINEL = "98765432100"
_SENTINEL_RE = re.compile(_SENTINEL + r"(\d{3})(?:\.0)?(?![\d.eE])")
_CACHE_SIZE = 1024
_cache: OrderedDict[str, tuple[str, tuple[list[str], list[tuple[str, str, str]]] | None]] = OrderedDict()
_cache_lock = threading.Lock()


def _parse(prepared: str) -> tuple[str, tuple[list[str], list[tuple[str, str, str]]] | None]:
    """queryparser + pass 3a on one ADQL text: (SQL, (tables, columns) or None)."""
    from queryparser.adql import ADQLQueryTranslator

    try:
        sql = ADQLQueryTranslator(prepared).to_postgresql()
    except Exception as exc:
        raise _syntax_error(prepared, exc) from exc
    sql = sql.strip().rstrip(";").strip()
    if not sql.upper().startswith("SELECT"):
        raise AdqlError("only SELECT queries are allowed")
    sql = _rewrite_calls(sql)
    if ";" in mask_strings(sql)[0]:
        raise AdqlError("only one statement per query")
    return sql, _tables_and_columns(sql)


def _fold_constants(toks: list[_Tok]) -> str | None:
    """Fold function arguments that are ``NUM * NUM`` or ``NUM / NUM`` (e.g. ``1.0/3600``).

    Only whole arguments (between ``(``/``,`` and ``)``/``,``) are folded, so
    operator precedence cannot change. Returns the new text, or None.
    """
    out: list[str] = []
    changed = False
    i = 0
    while i < len(toks):
        if (i + 4 < len(toks) and toks[i].text in ("(", ",") and toks[i + 1].kind == "num"
                and toks[i + 2].text in ("*", "/") and toks[i + 3].kind == "num" and toks[i + 4].text in (")", ",")):
            a, b = float(toks[i + 1].text), float(toks[i + 3].text)
            if toks[i + 2].text == "*" or b != 0:
                value = a * b if toks[i + 2].text == "*" else a / b
                out += [toks[i].text, repr(value)]
                changed = True
                i += 4
                continue
        out.append(toks[i].text if toks[i].kind != "comment" else " ")
        i += 1
    return " ".join(out) if changed else None


def _parse_cached(prepared: str) -> tuple[str, tuple[list[str], list[tuple[str, str, str]]] | None]:
    """`_parse` through a cache of query shapes (numbers abstracted away).

    ANTLR's Python runtime needs ~200 ms per parse; a cone search repeated
    with other centres and radii reuses the parse of its shape.
    """
    toks = lex(prepared)
    folded = _fold_constants(toks)
    if folded is not None:
        prepared = folded
        toks = lex(prepared)
    # 0 and 1 stay: the grammar checks CONTAINS(...) = 1 literally.
    nums = [i for i, t in enumerate(toks) if t.kind == "num" and t.text not in ("0", "1")]
    if not nums or len(nums) > 999:
        return _parse(prepared)
    shape = _splice(prepared, toks, {i: f"{_SENTINEL}{k:03d}" for k, i in enumerate(nums)})
    with _cache_lock:
        hit = _cache.get(shape)
        if hit is not None:
            _cache.move_to_end(shape)
    if hit is None:
        try:
            sql, found = _parse(shape)
        except AdqlError:
            return _parse(prepared)  # report the error on the user's own text
        seen = [int(m.group(1)) for m in _SENTINEL_RE.finditer(sql)]
        if sorted(seen) != list(range(len(nums))):
            # The parser folded or dropped a literal: this shape is not reusable.
            return _parse(prepared)
        hit = (sql, found)
        with _cache_lock:
            _cache[shape] = hit
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    values = [toks[i].text for i in nums]
    sql = _SENTINEL_RE.sub(lambda m: values[int(m.group(1))], hit[0])
    return sql, hit[1]


def translate(adql: str, catalog: Catalog) -> Translation:
    """Translate one ADQL query to PostgreSQL for the tables of ``catalog``.

    Parameters
    ----------
    adql
        ADQL 2.1 text (user input).
    catalog
        The tables and columns the caller may query (their TAP_SCHEMA).

    Returns
    -------
    Translation

    Raises
    ------
    AdqlError
        Syntax error (with line and column), unknown table or column,
        forbidden function, statement chain, anything but a SELECT.
    """
    sql, found = _parse_cached(_prepare(adql))
    tables: list[str] = []
    if found is None:
        masked = mask_strings(sql)[0].lower()
        tables = [t for t in catalog.columns if re.search(rf"\b{re.escape(t)}\b", masked)]
    else:
        tables, columns = found
        for t in tables:
            if t not in catalog.columns:
                raise AdqlError(f"unknown table {t!r} (see TAP_SCHEMA.tables for what you can query)")
        for s, t, c in columns:
            key = f"{s}.{t}".lower()
            if not c or c == "*" or key not in catalog.columns:
                continue
            if c.lower() not in catalog.columns[key] and c not in catalog.columns[key]:
                raise AdqlError(f"unknown column {c!r} in table {key}")
    sql, n = _rewrite_cones(sql, catalog, tables)
    return Translation(sql=sql, tables=tables, spatial_rewrites=n)
