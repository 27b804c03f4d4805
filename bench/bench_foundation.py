#!/usr/bin/env python
"""Benchmarks of the foundation: bulk load, cone search, partition overhead.

Usage::

    JSP_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        /work/venv/bin/python bench/bench_foundation.py all [--rows 5000000]

``JSP_DATABASE_URL`` names an *admin* database on the server under test: the
script creates its own ``bench_foundation_<pid>`` database there, migrates it
with ``jspdb.db.migrate.upgrade`` (partition order 3 = 768 partitions), runs
the benchmarks and drops the database again (``--keep`` keeps it).

Every figure is measured side by side with its baseline in the same process
run, so ratios stay meaningful on a shared machine even when absolute
numbers drift. Subcommands:

load
    5M synthetic reference rows through ``jspdb.refcat.load_refcat`` (numpy
    binary COPY into the partitioned, indexed ``jsp.refcat``) against a plain
    binary COPY of the same rows into a bare UNLOGGED table without indexes,
    written both with psycopg's ``Copy.write_row`` (+ ``set_types``) and with
    our numpy encoder; plus a breakdown (logged bare table, partitioned table
    without indexes, indexes built after the load).
cone
    1-arcmin cones through the project's query path (``refcat_cone`` /
    ``cone_sql``) against ``q3c_radial_query`` written by hand on an
    unpartitioned copy (CREATE TABLE AS + q3c index + ANALYZE); p50/p95 wall
    time per cone, cones interleaved. Also measured before ANALYZE of the
    partitions (as the loader leaves them).
partitions
    Planning + execution time (EXPLAIN (ANALYZE, FORMAT JSON)) and wall time
    of the same pruned cone query on the 768-partition table and on the
    unpartitioned copy, first query in a new session and later ones.
all
    load, then cone, then partitions on the loaded rows.

Results are printed and written to ``bench/results/foundation-<utc>.json``
and ``.md`` (a table ready for ``docs/benchmarks.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from sqlalchemy.engine import make_url

from jspdb.config import Settings
from jspdb.db import migrate
from jspdb.db.copy import copy_columns, encode_binary_copy
from jspdb.db.query import cone_sql, refcat_cone
from jspdb.refcat import REFCAT_COLUMNS, load_refcat, synthetic_refcat, validate_refcat

PARTITION_ORDER = 3
RA_RANGE = (145.0, 155.0)  # synthetic_refcat's default box
DEC_RANGE = (-3.0, 7.0)
CONE_RADIUS = 1.0 / 60.0  # degrees
FLAT = "bench.refcat_flat"
BARE = "bench.bare"
NOIDX = "bench.refcat_noidx"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------- utils

def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


@contextmanager
def timed():
    box = {}
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - t0


def libpq(url) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def bench_database(admin_url: str, keep: bool):
    """Create ``bench_foundation_<pid>``, migrate it, yield its libpq DSN, drop it."""
    admin = make_url(admin_url)
    name = f"bench_foundation_{os.getpid()}"
    admin_dsn = libpq(admin)
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin.set(database=name)
    dsn = libpq(url)
    try:
        with timed() as t:
            migrate.upgrade(settings=Settings(database_url=libpq(url), partition_order=PARTITION_ORDER))
        say(f"created {name}, migrated with partition order {PARTITION_ORDER} in {t['s']:.1f} s")
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE SCHEMA bench")
            # Autovacuum would ANALYZE the partitions at a moment of its choosing
            # and make the "as loaded" figures depend on luck: switch it off in
            # this throw-away database; the benchmark ANALYZEs explicitly.
            parts = c.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'jsp.refcat'::regclass"
            ).fetchall()
            for (p,) in parts:
                c.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(sql.SQL(p)))
        yield dsn
    finally:
        if keep:
            say(f"kept database {name}: {dsn}")
        else:
            with psycopg.connect(admin_dsn, autocommit=True) as c:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            say(f"dropped {name}")


def make_rows(n: int, seed: int) -> dict[str, np.ndarray]:
    with timed() as t:
        rows = synthetic_refcat(n, seed=seed, ra_range=RA_RANGE, dec_range=DEC_RANGE)
    say(f"generated {n:,} synthetic reference rows in {t['s']:.1f} s (not timed below)")
    return rows


def prepared(rows: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str], list[str], list[bool]]:
    """The rows exactly as load_refcat sends them: validated, hpx29 added, sorted."""
    data = validate_refcat(rows)
    order = np.argsort(data["hpx29"], kind="stable")
    names = ["hpx29", *[c for c in REFCAT_COLUMNS if c in data and c != "hpx29"]]
    data = {c: np.ascontiguousarray(data[c][order]) for c in names}
    return data, names, [REFCAT_COLUMNS[c][0] for c in names], [REFCAT_COLUMNS[c][1] for c in names]


def bare_ddl(table: str, names: list[str], types: list[str], unlogged: bool) -> sql.Composed:
    schema, _, rel = table.partition(".")
    return sql.SQL("CREATE {}TABLE {} ({})").format(
        sql.SQL("UNLOGGED " if unlogged else ""),
        sql.Identifier(schema, rel),
        sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(names, types, strict=False)),
    )


def checkpoint(dsn: str) -> None:
    """Flush dirty buffers so one load's checkpoint does not land in the next one's timing."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CHECKPOINT")


# ---------------------------------------------------------------------- load

def write_row_copy(conn, table: str, data, names, types, chunk: int = 100_000) -> tuple[float, float]:
    """psycopg's own binary COPY: ``set_types`` + one ``write_row`` per row.

    Returns (total seconds, seconds spent turning numpy columns into Python rows).
    """
    schema, _, rel = table.partition(".")
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(schema, rel), sql.SQL(", ").join(map(sql.Identifier, names)))
    n = len(data[names[0]])
    conv = 0.0
    t0 = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur, cur.copy(stmt) as cp:
        cp.set_types(types)
        for start in range(0, n, chunk):
            c0 = time.perf_counter()
            cols = [data[c][start:start + chunk].tolist() for c in names]
            conv += time.perf_counter() - c0
            write = cp.write_row
            for row in zip(*cols, strict=False):
                write(row)
    conn.commit()
    return time.perf_counter() - t0, conv


def bench_load(dsn: str, rows: dict[str, np.ndarray], breakdown: bool = True, repeat: int = 3) -> dict:
    """Each load path ``repeat`` times, interleaved (order rotated each round); medians."""
    n = len(rows["ra"])
    res: dict = {"rows": n, "repeat": repeat}
    with timed() as t:
        data, names, types, nulls = prepared(rows)
    res["prep_s"] = t["s"]
    say(f"validate + hpx29 + sort (numpy, what load_refcat does first): {t['s']:.2f} s")
    # the encoder alone, in copy_columns' chunks of 250k rows
    size = 0
    with timed() as t:
        for start in range(0, n, 250_000):
            size += len(encode_binary_copy([data[c][start:start + 250_000] for c in names], types, nulls))
    res["encode_s"] = t["s"]
    res["encode_mb"] = size / 1e6
    say(f"numpy encoder alone (no I/O): {t['s']:.2f} s, {n / t['s']:,.0f} rows/s, {size / 1e6:.0f} MB")
    pg_types, pg_nulls = dict(zip(names, types, strict=False)), dict(zip(names, nulls, strict=False))

    with psycopg.connect(dsn) as conn:

        def fresh(ddl: str | sql.Composable, *more: str) -> None:
            for stmt in (ddl, *more):
                conn.execute(stmt)
            conn.commit()
            checkpoint(dsn)

        def drop(table: str) -> None:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.commit()

        def loader() -> dict:
            fresh("TRUNCATE jsp.refcat")
            with timed() as t:
                load_refcat(conn, rows)
                conn.commit()
            return {"loader_s": t["s"]}

        def write_row() -> dict:
            drop(BARE)
            fresh(bare_ddl(BARE, names, types, unlogged=True))
            total, conv = write_row_copy(conn, BARE, data, names, types)
            drop(BARE)
            return {"write_row_s": total, "write_row_conv_s": conv}

        def encoder_bare() -> dict:
            drop(BARE)
            fresh(bare_ddl(BARE, names, types, unlogged=True))
            with timed() as t:
                copy_columns(conn, BARE, data, pg_types, pg_nulls)
                conn.commit()
            drop(BARE)
            return {"encoder_bare_s": t["s"]}

        def encoder_bare_logged() -> dict:
            drop(BARE)
            fresh(bare_ddl(BARE, names, types, unlogged=False))
            with timed() as t:
                copy_columns(conn, BARE, data, pg_types, pg_nulls)
                conn.commit()
            drop(BARE)
            return {"encoder_bare_logged_s": t["s"]}

        def encoder_noidx_then_index() -> dict:
            drop(NOIDX)
            fresh(f"CREATE TABLE {NOIDX} (LIKE jsp.refcat) PARTITION BY RANGE (hpx29)",
                  f"SELECT jsp.create_hpx_partitions('{NOIDX}'::regclass, {PARTITION_ORDER})")
            with timed() as t0:  # the alternative loader does load_refcat's numpy prep too
                d2 = prepared(rows)[0]
            with timed() as t:
                copy_columns(conn, NOIDX, d2, pg_types, pg_nulls)
                conn.commit()
            del d2
            with timed() as t2:
                conn.execute(f"ALTER TABLE {NOIDX} ADD PRIMARY KEY (hpx29, source_id)")
                conn.execute(f"CREATE INDEX ON {NOIDX} (q3c_ang2ipix(ra, dec))")
                conn.commit()
            drop(NOIDX)
            return {"encoder_part_noidx_s": t["s"], "index_after_s": t2["s"], "alt_prep_s": t0["s"]}

        paths = [("load_refcat -> jsp.refcat (768 partitions, PK + q3c, logged)", loader),
                 (f"psycopg write_row + set_types -> {BARE} (UNLOGGED, no index)", write_row),
                 (f"numpy encoder (copy_columns) -> {BARE} (UNLOGGED, no index)", encoder_bare)]
        if breakdown:
            paths += [(f"numpy encoder -> {BARE} (logged, no index)", encoder_bare_logged),
                      (f"numpy encoder -> {NOIDX} (768 partitions, logged, no index), then PK + q3c index",
                       encoder_noidx_then_index)]
        runs: dict[str, list[float]] = {}
        for r in range(repeat):
            say(f"load round {r + 1}/{repeat}")
            for j in range(len(paths)):
                label, fn = paths[(r + j) % len(paths)]
                for attempt in range(6):
                    try:
                        out = fn()
                        break
                    except psycopg.errors.OutOfMemory as exc:
                        # "out of shared memory": the server's shared lock table
                        # (max_locks_per_transaction x max_connections) is full,
                        # typically because other sessions hold a lock on each
                        # of hundreds of partitions. Wait and retry the path.
                        conn.rollback()
                        if attempt == 5:
                            raise
                        say(f"  {label}: {exc.diag.message_primary}; retrying in 10 s")
                        time.sleep(10)
                for k, v in out.items():
                    runs.setdefault(k, []).append(v)
                first = next(iter(out))
                extra = "".join(f", {k} {v:.1f} s" for k, v in list(out.items())[1:])
                say(f"  {label}: {out[first]:.1f} s, {n / out[first]:,.0f} rows/s{extra}")
        # jsp.refcat stays loaded (TRUNCATE only precedes a load) for the cone benchmarks
    res["runs"] = runs
    for k, v in runs.items():
        res[k] = float(np.median(v))
    # ratios per round (each round runs every path back to back), then their median
    res["ratio_write_row_runs"] = [w / t for t, w in zip(runs["loader_s"], runs["write_row_s"], strict=True)]
    res["ratio_encoder_runs"] = [e / t for t, e in zip(runs["loader_s"], runs["encoder_bare_s"], strict=True)]
    res["ratio_write_row"] = float(np.median(res["ratio_write_row_runs"]))
    res["ratio_encoder"] = float(np.median(res["ratio_encoder_runs"]))
    if "encoder_part_noidx_s" in runs:
        # the alternative loader: same numpy prep, COPY without indexes, build them after
        alt = [p + a + b for p, a, b in zip(runs["alt_prep_s"], runs["encoder_part_noidx_s"],
                                            runs["index_after_s"], strict=True)]
        res["alt_s"] = float(np.median(alt))
        res["ratio_alt_write_row_runs"] = [w / a for a, w in zip(alt, runs["write_row_s"], strict=False)]
        res["ratio_alt_write_row"] = float(np.median(res["ratio_alt_write_row_runs"]))
    say(f"load medians of {repeat}: load_refcat {n / res['loader_s']:,.0f} rows/s, write_row "
        f"{n / res['write_row_s']:,.0f} rows/s, encoder bare {n / res['encoder_bare_s']:,.0f} rows/s; "
        f"ratio vs write_row {res['ratio_write_row']:.2f}x (rounds: "
        f"{', '.join(f'{x:.2f}' for x in res['ratio_write_row_runs'])})")
    return res


def load_only(dsn: str, rows) -> None:
    with psycopg.connect(dsn) as conn, timed() as t:
        load_refcat(conn, rows)
        conn.commit()
    say(f"loaded {len(rows['ra']):,} rows with load_refcat in {t['s']:.1f} s (setup, not a figure)")


def make_flat(dsn: str) -> float:
    """Unpartitioned copy of jsp.refcat with a q3c index, analysed."""
    with psycopg.connect(dsn, autocommit=True) as c, timed() as t:
        c.execute(f"DROP TABLE IF EXISTS {FLAT}")
        c.execute(f"CREATE TABLE {FLAT} WITH (autovacuum_enabled = false) AS SELECT * FROM jsp.refcat")
        c.execute(f"CREATE INDEX refcat_flat_q3c_idx ON {FLAT} (q3c_ang2ipix(ra, dec))")
        c.execute(f"ANALYZE {FLAT}")
    say(f"unpartitioned copy {FLAT} (CREATE TABLE AS + q3c index + ANALYZE): {t['s']:.1f} s")
    return t["s"]


def analyze_refcat(dsn: str) -> float:
    with psycopg.connect(dsn, autocommit=True) as c, timed() as t:
        c.execute("ANALYZE jsp.refcat")
    say(f"ANALYZE jsp.refcat: {t['s']:.1f} s")
    return t["s"]


def is_analyzed(dsn: str) -> bool:
    with psycopg.connect(dsn) as c:
        return bool(c.execute(
            "SELECT count(*) > 0 FROM pg_stats WHERE schemaname = 'jsp' AND tablename LIKE 'refcat_p%'"
        ).fetchone()[0])


# ---------------------------------------------------------------------- cone

def random_cones(n: int, seed: int, margin: float = 2 * CONE_RADIUS) -> np.ndarray:
    """Cone centres uniform on the sphere within the data box (cones fully inside)."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(RA_RANGE[0] + margin, RA_RANGE[1] - margin, n)
    s0, s1 = np.sin(np.radians([DEC_RANGE[0] + margin, DEC_RANGE[1] - margin]))
    dec = np.degrees(np.arcsin(rng.uniform(s0, s1, n)))
    return np.column_stack([ra, dec])


FLAT_CONE = sql.SQL(
    "SELECT * FROM {} WHERE q3c_radial_query(ra, dec, %s, %s, %s) ORDER BY q3c_dist(ra, dec, %s, %s)"
).format(sql.Identifier(*FLAT.split(".")))


def cone_variants(conn_p, conn_f, fine_order: int | None):
    """name -> callable(ra, dec) returning the rows of one cone."""

    def project(ra, dec):  # the public query path
        return refcat_cone(conn_p, ra, dec, CONE_RADIUS)

    def project_sql(ra, dec):  # cone_sql with the partition order known
        q, p = cone_sql("jsp.refcat", ra, dec, CONE_RADIUS, PARTITION_ORDER)
        q = sql.SQL("{} ORDER BY q3c_dist(ra, dec, %s, %s)").format(q)
        with conn_p.cursor(row_factory=dict_row) as cur:
            return cur.execute(q, [*p, ra, dec], prepare=False).fetchall()

    def project_fine(ra, dec):  # finer hpx29 ranges (cover at fine_order)
        q, p = cone_sql("jsp.refcat", ra, dec, CONE_RADIUS, fine_order)
        q = sql.SQL("{} ORDER BY q3c_dist(ra, dec, %s, %s)").format(q)
        with conn_p.cursor(row_factory=dict_row) as cur:
            return cur.execute(q, [*p, ra, dec], prepare=False).fetchall()

    def flat(ra, dec):  # hand-written q3c on the unpartitioned copy
        with conn_f.cursor(row_factory=dict_row) as cur:
            return cur.execute(FLAT_CONE, [ra, dec, CONE_RADIUS, ra, dec], prepare=False).fetchall()

    v = {"refcat_cone (partitioned)": project, "cone_sql, order known (partitioned)": project_sql}
    if fine_order:
        v[f"cone_sql, hpx29 ranges at order {fine_order} (partitioned)"] = project_fine
    v["hand-written q3c (unpartitioned)"] = flat
    return v


def run_cones(dsn: str, cones: np.ndarray, fine_order: int | None, warmup: int = 20) -> dict:
    with psycopg.connect(dsn, autocommit=True) as cp, psycopg.connect(dsn, autocommit=True) as cf:
        variants = cone_variants(cp, cf, fine_order)
        names = list(variants)
        times = {k: [] for k in names}
        counts = {k: [] for k in names}
        for ra, dec in cones[:warmup]:
            for k in names:
                variants[k](float(ra), float(dec))
        for i, (ra, dec) in enumerate(cones):
            # rotate the order so no variant always runs first (cache effects)
            for j in range(len(names)):
                k = names[(i + j) % len(names)]
                t0 = time.perf_counter()
                rows = variants[k](float(ra), float(dec))
                times[k].append(time.perf_counter() - t0)
                counts[k].append(len(rows))
    ref = counts["hand-written q3c (unpartitioned)"]
    for k in names:
        if counts[k] != ref:
            bad = sum(a != b for a, b in zip(counts[k], ref, strict=False))
            raise RuntimeError(f"{k}: row counts differ from the unpartitioned query on {bad} cones")
    out = {}
    for k in names:
        ms = np.asarray(times[k]) * 1e3
        out[k] = {"p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "mean_ms": float(ms.mean())}
    out["_rows_per_cone_mean"] = float(np.mean(ref))
    out["_cones"] = len(cones)
    return out


def print_cones(title: str, r: dict) -> None:
    base = r["hand-written q3c (unpartitioned)"]
    say(f"{title}: {r['_cones']} cones of 1 arcmin, {r['_rows_per_cone_mean']:.1f} rows per cone on average")
    for k, v in r.items():
        if k.startswith("_"):
            continue
        say(f"  {k:55s} p50 {v['p50_ms']:7.2f} ms  p95 {v['p95_ms']:7.2f} ms  "
            f"ratio p50 {v['p50_ms'] / base['p50_ms']:.2f}x  p95 {v['p95_ms'] / base['p95_ms']:.2f}x")


def bench_cone(dsn: str, n_cones: int, seed: int, fine_order: int, n_before: int) -> dict:
    res: dict = {}
    cones = random_cones(n_cones, seed)
    if n_before and not is_analyzed(dsn):
        r = run_cones(dsn, random_cones(n_before, seed + 1), fine_order, warmup=5)
        print_cones("as loaded (partitions never ANALYZEd)", r)
        res["before_analyze"] = r
    res["analyze_s"] = analyze_refcat(dsn)
    r = run_cones(dsn, cones, fine_order)
    print_cones("after ANALYZE", r)
    res["after_analyze"] = r
    return res


# ---------------------------------------------------------------- partitions

def explain_times(cur, q, params) -> tuple[float, float]:
    plan = cur.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(q), params,
                       prepare=False).fetchone()[0][0]
    return plan["Planning Time"], plan["Execution Time"]


def bench_partitions(dsn: str, n_sessions: int, n_later: int, seed: int) -> dict:
    """Same cone SQL (cone_sql) on the partitioned table and on the flat copy."""
    cones = random_cones(n_sessions * (n_later + 1) * 4, seed + 7)
    tables = {"partitioned (768)": "jsp.refcat", "unpartitioned": FLAT}
    acc = {k: {"first_wall": [], "later_wall": [], "first_plan": [], "first_exec": [],
               "later_plan": [], "later_exec": [], "connect": [], "by_position": []} for k in tables}
    ci = 0
    for s in range(n_sessions):
        # alternate which table goes first
        for label in (list(tables) if s % 2 == 0 else list(tables)[::-1]):
            table = tables[label]
            a = acc[label]
            # wall time: a new session, first query, then later queries
            t0 = time.perf_counter()
            conn = psycopg.connect(dsn, autocommit=True)
            a["connect"].append(time.perf_counter() - t0)
            pos = []
            with conn, conn.cursor() as cur:
                for i in range(n_later + 1):
                    ra, dec = cones[ci]
                    ci += 1
                    q, p = cone_sql(table, float(ra), float(dec), CONE_RADIUS, PARTITION_ORDER)
                    t0 = time.perf_counter()
                    cur.execute(q, p, prepare=False).fetchall()
                    dt_ms = (time.perf_counter() - t0) * 1e3
                    pos.append(dt_ms)
                    (a["first_wall"] if i == 0 else a["later_wall"]).append(dt_ms)
            a["by_position"].append(pos)
            # planning/execution: another new session, EXPLAIN ANALYZE
            with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
                for i in range(n_later + 1):
                    ra, dec = cones[ci]
                    ci += 1
                    q, p = cone_sql(table, float(ra), float(dec), CONE_RADIUS, PARTITION_ORDER)
                    pl, ex = explain_times(cur, q, p)
                    if i == 0:
                        a["first_plan"].append(pl)
                        a["first_exec"].append(ex)
                    else:
                        a["later_plan"].append(pl)
                        a["later_exec"].append(ex)
    # psycopg's default: a query text run 5 times is server-prepared; the 6th
    # run of the prepared statement makes PostgreSQL build a generic plan.
    auto = {}
    for label, table in tables.items():
        ra, dec = cones[0]
        q, p = cone_sql(table, float(ra), float(dec), CONE_RADIUS, PARTITION_ORDER)
        worst = []
        for _ in range(3):
            with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
                ts = []
                for _i in range(14):
                    t0 = time.perf_counter()
                    cur.execute(q, p).fetchall()
                    ts.append((time.perf_counter() - t0) * 1e3)
                worst.append((max(ts[1:]), int(np.argmax(ts[1:])) + 1, float(np.median(ts[1:]))))
        auto[label] = {"worst_ms": float(np.median([w[0] for w in worst])),
                       "worst_position": int(np.median([w[1] for w in worst])),
                       "median_ms": float(np.median([w[2] for w in worst]))}
    out = {"_auto_prepare": auto}
    for label, a in acc.items():
        first_pe = np.add(a["first_plan"], a["first_exec"])
        later_pe = np.add(a["later_plan"], a["later_exec"])
        out[label] = {
            "first_plan_ms": pct(a["first_plan"], 50), "first_exec_ms": pct(a["first_exec"], 50),
            "first_plan_exec_ms": pct(first_pe, 50),
            "later_plan_ms": pct(a["later_plan"], 50), "later_exec_ms": pct(a["later_exec"], 50),
            "later_plan_exec_ms": pct(later_pe, 50), "later_plan_exec_p95_ms": pct(later_pe, 95),
            "first_wall_ms": pct(a["first_wall"], 50), "first_wall_p95_ms": pct(a["first_wall"], 95),
            "later_wall_ms": pct(a["later_wall"], 50), "later_wall_p95_ms": pct(a["later_wall"], 95),
            "connect_ms": pct(np.asarray(a["connect"]) * 1e3, 50),
            "wall_by_position_p50_ms": [pct(col, 50) for col in np.asarray(a["by_position"]).T],
        }
    out["_sessions"] = n_sessions
    out["_later"] = n_later
    p, f = out["partitioned (768)"], out["unpartitioned"]
    say(f"partitions: {n_sessions} new sessions per table, 1 first + {n_later} later queries each (medians)")
    for key, what in [("first_plan_exec_ms", "first query: planning + execution"),
                      ("first_plan_ms", "first query: planning"),
                      ("first_wall_ms", "first query: wall"),
                      ("later_plan_exec_ms", "later queries: planning + execution"),
                      ("later_plan_ms", "later queries: planning"),
                      ("later_wall_ms", "later queries: wall")]:
        say(f"  {what:40s} partitioned {p[key]:7.2f} ms  unpartitioned {f[key]:7.2f} ms  "
            f"ratio {p[key] / f[key]:.2f}x")
    say(f"  wall by position in session (partitioned): {' '.join(f'{x:.1f}' for x in p['wall_by_position_p50_ms'])}")
    say(f"  wall by position in session (flat):        {' '.join(f'{x:.1f}' for x in f['wall_by_position_p50_ms'])}")
    for label, v in auto.items():
        say(f"  psycopg auto-prepare, {label}: slowest of 13 later runs {v['worst_ms']:.1f} ms "
            f"(run {v['worst_position'] + 1}), median {v['median_ms']:.2f} ms")
    return out


# ------------------------------------------------------------------- report

def server_info(dsn: str) -> dict:
    with psycopg.connect(dsn) as c:
        g = lambda q: c.execute(q).fetchone()[0]  # noqa: E731
        return {
            "server": g("SELECT version()"),
            "shared_buffers": g("SHOW shared_buffers"),
            "max_wal_size": g("SHOW max_wal_size"),
            "synchronous_commit": g("SHOW synchronous_commit"),
            "q3c": g("SELECT extversion FROM pg_extension WHERE extname = 'q3c'"),
        }


def markdown(res: dict, cmd: str) -> str:
    L = []
    info = res["info"]
    L.append(f"Measured {res['date']} on {res['machine']}; {info['server'].split(' on ')[0]} "
             f"(shared_buffers {info['shared_buffers']}, max_wal_size {info['max_wal_size']}, "
             f"synchronous_commit {info['synchronous_commit']}), q3c {info['q3c']}, "
             f"partition order {PARTITION_ORDER} ({12 * 4 ** PARTITION_ORDER} partitions). "
             f"Machine shared with other work: 1-minute load average {res['loadavg_start']:.1f} at the start, "
             f"{res['loadavg_end']:.1f} at the end; whole run {res['total_s'] / 60:.1f} min.")
    L.append("")
    L.append(f"Reproduce: `{cmd}`")
    L.append("")
    L.append("| benchmark | jspdb | baseline | ratio | aim | met |")
    L.append("|---|---|---|---|---|---|")
    if "load" in res:
        r = res["load"]
        n = r["rows"]
        lr = n / r["loader_s"]
        wr = n / r["write_row_s"]
        er = n / r["encoder_bare_s"]
        rw, re_ = r["ratio_write_row"], r["ratio_encoder"]
        L.append(f"| load {n:,} rows: `load_refcat` -> jsp.refcat (768 partitions, PK + q3c, logged) vs psycopg "
                 f"`write_row` -> bare UNLOGGED table | {lr:,.0f} rows/s | {wr:,.0f} rows/s | {rw:.2f}x | "
                 f">= 0.5x | {'yes' if rw >= 0.5 else 'no'} |")
        L.append(f"| load, same, vs our numpy encoder -> bare UNLOGGED table | {lr:,.0f} rows/s | {er:,.0f} rows/s | "
                 f"{re_:.2f}x | (>= 0.5x) | {'yes' if re_ >= 0.5 else 'no'} |")
        if "alt_s" in r:
            ra_ = r["ratio_alt_write_row"]
            L.append(f"| load, alternative (not the library today): same prep, COPY into 768 partitions without "
                     f"index, then build PK + q3c; vs psycopg `write_row` -> bare UNLOGGED | {n / r['alt_s']:,.0f} "
                     f"rows/s | {wr:,.0f} rows/s | {ra_:.2f}x | (>= 0.5x) | {'yes' if ra_ >= 0.5 else 'no'} |")
    if "cone" in res:
        r = res["cone"]["after_analyze"]
        b = r["hand-written q3c (unpartitioned)"]
        p = r["refcat_cone (partitioned)"]
        for q in ("p50", "p95"):
            ratio = p[f"{q}_ms"] / b[f"{q}_ms"]
            L.append(f"| cone 1', {r['_cones']} cones, {q}: `refcat_cone` (partitioned) vs hand-written "
                     f"`q3c_radial_query` (unpartitioned) | {p[f'{q}_ms']:.2f} ms | {b[f'{q}_ms']:.2f} ms | "
                     f"{ratio:.2f}x | <= 1.5x | {'yes' if ratio <= 1.5 else 'no'} |")
    if "partitions" in res:
        r = res["partitions"]
        p, f = r["partitioned (768)"], r["unpartitioned"]
        for key, what in [("first_plan_exec_ms", "first query in a new session, planning + execution"),
                          ("first_wall_ms", "first query in a new session, wall"),
                          ("later_plan_exec_ms", "later queries, planning + execution"),
                          ("later_wall_ms", "later queries, wall")]:
            ratio = p[key] / f[key]
            L.append(f"| partitions: {what} (median) | {p[key]:.2f} ms | {f[key]:.2f} ms | {ratio:.2f}x | "
                     f"<= 2x | {'yes' if ratio <= 2 else 'no'} |")
    L.append("")
    if "load" in res:
        r = res["load"]
        n = r["rows"]
        L.append(f"Load details (same rows, same run; times are medians of {r['repeat']} interleaved rounds, "
                 f"ratios the median of the per-round ratios; `load_refcat` vs `write_row` per round: "
                 f"{', '.join(f'{x:.2f}' for x in r['ratio_write_row_runs'])}):")
        L.append("")
        L.append("| path | seconds | rows/s |")
        L.append("|---|---|---|")
        L.append(f"| numpy validate + hpx29 + sort (inside `load_refcat`, no I/O) | {r['prep_s']:.2f} | {n / r['prep_s']:,.0f} |")
        L.append(f"| numpy encoder alone, {r['encode_mb']:.0f} MB (no I/O) | {r['encode_s']:.2f} | {n / r['encode_s']:,.0f} |")
        L.append(f"| `load_refcat` -> jsp.refcat, end to end | {r['loader_s']:.1f} | {n / r['loader_s']:,.0f} |")
        L.append(f"| psycopg `write_row` -> bare UNLOGGED ({r['write_row_conv_s']:.1f} s of it numpy -> Python) | "
                 f"{r['write_row_s']:.1f} | {n / r['write_row_s']:,.0f} |")
        L.append(f"| numpy encoder -> bare UNLOGGED | {r['encoder_bare_s']:.1f} | {n / r['encoder_bare_s']:,.0f} |")
        if "encoder_bare_logged_s" in r:
            L.append(f"| numpy encoder -> bare logged | {r['encoder_bare_logged_s']:.1f} | {n / r['encoder_bare_logged_s']:,.0f} |")
            L.append(f"| numpy encoder -> 768 partitions, logged, no index | {r['encoder_part_noidx_s']:.1f} | "
                     f"{n / r['encoder_part_noidx_s']:,.0f} |")
            tot = r["encoder_part_noidx_s"] + r["index_after_s"]
            L.append(f"| same, then build PK + q3c index ({r['index_after_s']:.1f} s) | {tot:.1f} | {n / tot:,.0f} |")
            L.append(f"| alternative loader: numpy prep ({r['alt_prep_s']:.1f} s, timed in the same round) + the two "
                     f"lines above | {r['alt_s']:.1f} | {n / r['alt_s']:,.0f} |")
        L.append("")
    if "cone" in res:
        L.append("Cone search details (wall time per cone in the client, rows fetched as dicts, ORDER BY distance):")
        L.append("")
        L.append("| state | query | p50 ms | p95 ms | p50 ratio |")
        L.append("|---|---|---|---|---|")
        for state, label in (("before_analyze", "as loaded, partitions not ANALYZEd"),
                             ("after_analyze", "after ANALYZE jsp.refcat")):
            if state not in res["cone"]:
                continue
            r = res["cone"][state]
            b = r["hand-written q3c (unpartitioned)"]
            for k, v in r.items():
                if k.startswith("_"):
                    continue
                L.append(f"| {label} ({r['_cones']} cones) | {k} | {v['p50_ms']:.2f} | {v['p95_ms']:.2f} | "
                         f"{v['p50_ms'] / b['p50_ms']:.2f}x |")
        L.append("")
    if "partitions" in res:
        r = res["partitions"]
        p, f = r["partitioned (768)"], r["unpartitioned"]
        L.append(f"Partition overhead details ({r['_sessions']} new sessions per table, {r['_later']} later queries "
                 f"each, the same `cone_sql` text on both tables, not server-prepared, medians):")
        L.append("")
        L.append("| measure | partitioned (768) ms | unpartitioned ms | ratio |")
        L.append("|---|---|---|---|")
        for key, what in [("first_plan_ms", "first query: Planning Time"),
                          ("first_exec_ms", "first query: Execution Time"),
                          ("first_wall_ms", "first query: wall"),
                          ("later_plan_ms", "later queries: Planning Time"),
                          ("later_exec_ms", "later queries: Execution Time"),
                          ("later_wall_ms", "later queries: wall"),
                          ("later_wall_p95_ms", "later queries: wall p95"),
                          ("connect_ms", "connect (not in the figures above)")]:
            L.append(f"| {what} | {p[key]:.2f} | {f[key]:.2f} | {p[key] / f[key]:.2f}x |")
        a = r["_auto_prepare"]
        ap, af = a["partitioned (768)"], a["unpartitioned"]
        L.append(f"| same query text run 14 times with psycopg's default auto-prepare: slowest run "
                 f"(run {ap['worst_position'] + 1} / {af['worst_position'] + 1}) | {ap['worst_ms']:.1f} | "
                 f"{af['worst_ms']:.1f} | {ap['worst_ms'] / af['worst_ms']:.0f}x |")
        L.append("")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["load", "cone", "partitions", "all"])
    ap.add_argument("--rows", type=int, default=5_000_000, help="synthetic reference rows (default 5M)")
    ap.add_argument("--cones", type=int, default=500, help="random cones after ANALYZE (default 500)")
    ap.add_argument("--cones-before", type=int, default=50,
                    help="cones before ANALYZE, as the loader leaves the table (default 50; 0 skips)")
    ap.add_argument("--fine-order", type=int, default=10,
                    help="also time cone_sql with hpx29 ranges at this order (0 skips)")
    ap.add_argument("--sessions", type=int, default=20, help="new sessions per table (partitions)")
    ap.add_argument("--later", type=int, default=10, help="later queries per session (partitions)")
    ap.add_argument("--repeat", type=int, default=3, help="load: rounds of every load path (medians)")
    ap.add_argument("--no-breakdown", action="store_true", help="load: skip the breakdown loads")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--keep", action="store_true", help="keep the bench database")
    args = ap.parse_args(argv)

    admin = os.environ.get("JSP_DATABASE_URL")
    if not admin:
        print("set JSP_DATABASE_URL to an admin database of the server to benchmark, e.g. "
              "postgresql://postgres@127.0.0.1:5432/postgres", file=sys.stderr)
        return 2
    cmd = "JSP_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres " \
          "/work/venv/bin/python bench/bench_foundation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    t_start = time.perf_counter()
    res: dict = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}",
        "args": vars(args),
        "loadavg_start": os.getloadavg()[0],
    }
    rows = make_rows(args.rows, args.seed)
    with bench_database(admin, args.keep) as dsn:
        res["info"] = server_info(dsn)
        if args.what in ("load", "all"):
            res["load"] = bench_load(dsn, rows, breakdown=not args.no_breakdown, repeat=args.repeat)
        else:
            load_only(dsn, rows)
        del rows
        gc.collect()
        if args.what in ("cone", "partitions", "all"):
            res["flat_s"] = make_flat(dsn)
        if args.what in ("cone", "all"):
            res["cone"] = bench_cone(dsn, args.cones, args.seed, args.fine_order, args.cones_before)
        if args.what in ("partitions", "all"):
            if not is_analyzed(dsn):
                analyze_refcat(dsn)
            res["partitions"] = bench_partitions(dsn, args.sessions, args.later, args.seed)
    res["total_s"] = time.perf_counter() - t_start
    res["loadavg_end"] = os.getloadavg()[0]
    md = markdown(res, cmd)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS_DIR / f"foundation-{args.what}-{stamp}.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS_DIR / f"foundation-{args.what}-{stamp}.md").write_text(md + "\n")
    print()
    print(md)
    say(f"total {res['total_s']:.0f} s; results in {RESULTS_DIR}/foundation-{args.what}-{stamp}.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
