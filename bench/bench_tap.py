#!/usr/bin/env python
"""Benchmarks of the TAP service: added latency of a sync cone, and a loopback load test.

Usage::

    JSP_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        /work/venv/bin/python bench/bench_tap.py all [--rows 1000000] [--cones 300] [--clients 20] [--seconds 60]

``JSP_DATABASE_URL`` names an *admin* database: the script creates its own
``bench_tap_<pid>`` database, migrates it (partition order 3 = 768
partitions), loads ``--rows`` synthetic reference stars into a 1 x 1 deg
field (so a 1' cone holds ~``rows`` x 8.7e-4 stars: ~870 for 1M), starts
``uvicorn jspdb.api.app`` on a free loopback port and drops everything at
the end (``--keep`` keeps the database).

cone
    ``--cones`` 1-arcmin cones at random centres, each asked twice,
    interleaved: (a) raw SQL -- the same HEALPix-range + ``q3c_radial_query``
    SELECT that the translator emits, through psycopg on a warm connection,
    rows fetched; (b) TAP sync over HTTP (ADQL ``CONTAINS(POINT, CIRCLE)``,
    RESPONSEFORMAT VOTable BINARY2), body read completely. Reported: p50/p95
    of each and of the difference (the service's added time: HTTP,
    translation, role/timeout setup, serialisation, query log).
load
    ``--clients`` threads for ``--seconds`` s, each looping over a mix of
    1' cones (60 %), 5' cones (20 %) and small joins (20 %: forced
    photometry of the objects in a 1' cone, refcat x dr1.object crossmatch
    in a 1' cone). Half way through, one long query (a 20 s cross join, as
    a user with a 60 s limit) starts. Reported: requests, errors, p50/p95/max
    overall and while the long query ran.
all
    cone, then load.

Results are printed and written to ``bench/results/tap-<utc>.json`` and
``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import requests
from psycopg import sql
from sqlalchemy.engine import make_url

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FIELD = ((149.5, 150.5), (1.5, 2.5))
CONE_ADQL = ("SELECT source_id, ra, dec, g_mag, bp_mag, rp_mag, parallax, pmra, pmdec FROM jsp.refcat WHERE "
             "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra!r}, {dec!r}, {r!r})) = 1")


def say(msg: str) -> None:
    print(msg, flush=True)


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(admin_url: str, rows: int) -> tuple[str, str]:
    """Create, migrate and load the benchmark database; returns (sqlalchemy URL, libpq DSN)."""
    from jspdb.config import Settings
    from jspdb.db import migrate
    from jspdb.db.release import create_release, publish_release
    from jspdb.healpix import hpx29
    from jspdb.refcat import load_refcat, synthetic_refcat

    admin = make_url(admin_url)
    name = f"bench_tap_{os.getpid()}"
    with psycopg.connect(admin.set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin.set(database=name, drivername="postgresql+psycopg").render_as_string(hide_password=False)
    dsn = admin.set(database=name, drivername="postgresql").render_as_string(hide_password=False)
    settings = Settings(database_url=url, partition_order=3)
    migrate.upgrade("head", settings=settings)
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        load_refcat(conn, synthetic_refcat(rows, seed=3, ra_range=FIELD[0], dec_range=FIELD[1]))
        conn.commit()
        create_release(conn, "dr1", 3, {"job": "bench_tap"})
        conn.commit()
        n = rows // 4
        ref = conn.execute("SELECT ra, dec FROM jsp.refcat ORDER BY source_id LIMIT %s", (n,)).fetchall()
        ra = np.array([r[0] for r in ref]) + np.random.default_rng(1).normal(0, 0.1 / 3600, n)
        dec = np.array([r[1] for r in ref])
        h = hpx29(ra, dec)
        with conn.cursor().copy("COPY dr1.object (object_id, hpx29, ra, dec, tile_order, tile_ipix) "
                                "FROM STDIN") as cp:
            for i in range(n):
                cp.write_row((i + 1, int(h[i]), float(ra[i]), float(dec[i]), 9, int(h[i] >> 40)))
        with conn.cursor().copy("COPY dr1.forced_photometry (object_id, hpx29, band_id, flux_njy, flux_err_njy) "
                                "FROM STDIN") as cp:
            for i in range(n):
                for band in (3, 7, 15):
                    cp.write_row((i + 1, int(h[i]), band, 1000.0, 10.0))
        conn.commit()
        publish_release(conn, "dr1")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    say(f"loaded {rows:,} reference stars and {n:,} objects in {time.perf_counter() - t0:.1f} s")
    return url, dsn


def start_server(url: str, port: int, workers: int = 1) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSP_")}
    env.update({"JSP_DATABASE_URL": url, "JSP_API_ANON_RATE_PER_MIN": "100000000",
                "JSP_API_USER_RATE_PER_MIN": "100000000", "JSP_API_ANON_TIMEOUT_MS": "30000",
                "JSP_API_POOL_MAX": "24"})
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "jspdb.api.app:app_from_env", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                             "--workers", str(workers)], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/tap/availability", timeout=2).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def raw_cone_sql(ra: float, dec: float, r: float) -> str:
    """The SQL the translator emits for the cone (HEALPix ranges + q3c), written here by hand."""
    from jspdb.healpix import cone_ranges

    rng = " OR ".join(f"(hpx29 >= {lo} AND hpx29 < {hi})" for lo, hi in cone_ranges(ra, dec, r, 3))
    return (f"SELECT source_id, ra, dec, g_mag, bp_mag, rp_mag, parallax, pmra, pmdec FROM jsp.refcat "
            f"WHERE ({rng}) AND q3c_radial_query(ra, dec, {ra!r}, {dec!r}, {r!r})")


def random_centre(rng: random.Random, margin: float = 0.02) -> tuple[float, float]:
    return (rng.uniform(FIELD[0][0] + margin, FIELD[0][1] - margin),
            rng.uniform(FIELD[1][0] + margin, FIELD[1][1] - margin))


def bench_cone(base: str, dsn: str, n: int) -> dict:
    rng = random.Random(42)
    r = 1 / 60
    session = requests.Session()
    raw_t, tap_t, rows, sizes = [], [], [], []
    with psycopg.connect(dsn) as conn:
        conn.execute("SET jit = off")
        for i in range(n + 20):
            ra, dec = random_centre(rng)
            t0 = time.perf_counter()
            got = conn.execute(raw_cone_sql(ra, dec, r)).fetchall()
            t1 = time.perf_counter()
            resp = session.get(f"{base}/tap/sync", params={"QUERY": CONE_ADQL.format(ra=ra, dec=dec, r=r),
                                                           "RESPONSEFORMAT": "votable"})
            body = resp.content
            t2 = time.perf_counter()
            assert resp.status_code == 200, resp.text
            assert body.count(b"<FIELD") == 9
            if i >= 20:  # warm-up: first parse of the query shape, pool, caches
                raw_t.append((t1 - t0) * 1000)
                tap_t.append((t2 - t1) * 1000)
                rows.append(len(got))
                sizes.append(len(body))
    session.close()
    diff = np.asarray(tap_t) - np.asarray(raw_t)
    out = {
        "cones": n, "radius_arcmin": 1.0, "rows_p50": pct(rows, 50), "rows_max": int(max(rows)),
        "votable_bytes_p50": pct(sizes, 50),
        "raw_sql_ms_p50": pct(raw_t, 50), "raw_sql_ms_p95": pct(raw_t, 95),
        "tap_ms_p50": pct(tap_t, 50), "tap_ms_p95": pct(tap_t, 95),
        "added_ms_p50": pct(diff, 50), "added_ms_p95": pct(diff, 95),
        "added_p50_of_medians_ms": pct(tap_t, 50) - pct(raw_t, 50),
    }
    say(f"cone 1': {out['rows_p50']:.0f} rows (max {out['rows_max']}), raw SQL p50 {out['raw_sql_ms_p50']:.2f} ms, "
        f"TAP p50 {out['tap_ms_p50']:.2f} ms -> added p50 {out['added_ms_p50']:.2f} ms "
        f"(p95 {out['added_ms_p95']:.2f} ms)")
    return out


def bench_load(base: str, dsn: str, clients: int, seconds: float) -> dict:
    from jspdb.api.users import add_user, delete_user

    with psycopg.connect(dsn) as conn:
        _, token = add_user(conn, "benchlong")
        conn.commit()
    stop = threading.Event()
    lat: list[tuple[float, float, str]] = []  # (start offset, ms, kind)
    errors: list[str] = []
    lock = threading.Lock()
    t_start = time.perf_counter()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        s = requests.Session()
        while not stop.is_set():
            ra, dec = random_centre(rng)
            x = rng.random()
            if x < 0.6:
                kind, q = "cone1", CONE_ADQL.format(ra=ra, dec=dec, r=1 / 60)
            elif x < 0.8:
                kind, q = "cone5", CONE_ADQL.format(ra=ra, dec=dec, r=5 / 60)
            elif x < 0.9:
                kind = "join_phot"
                q = ("SELECT o.object_id, f.band_id, f.flux_njy FROM dr1.object AS o JOIN dr1.forced_photometry "
                     "AS f ON f.object_id = o.object_id AND f.hpx29 = o.hpx29 WHERE "
                     f"CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', {ra!r}, {dec!r}, {1 / 60!r})) = 1")
            else:
                kind = "xmatch"
                q = ("SELECT r.source_id, o.object_id FROM jsp.refcat AS r JOIN dr1.object AS o ON "
                     "1 = CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', r.ra, r.dec, 0.5/3600)) WHERE "
                     f"1 = CONTAINS(POINT('ICRS', r.ra, r.dec), CIRCLE('ICRS', {ra!r}, {dec!r}, {1 / 60!r}))")
            t0 = time.perf_counter()
            try:
                resp = s.get(f"{base}/tap/sync", params={"QUERY": q}, timeout=60)
                _ = resp.content
                ok = resp.status_code == 200
            except requests.RequestException as exc:
                ok, resp = False, exc
            t1 = time.perf_counter()
            with lock:
                lat.append((t0 - t_start, (t1 - t0) * 1000, kind))
                if not ok:
                    text = getattr(resp, "text", str(resp))
                    if "QUERY_STATUS" in text:
                        text = text.split('value="ERROR">', 1)[-1].split("</INFO>", 1)[0]
                    errors.append(f"{kind}: HTTP {getattr(resp, 'status_code', '-')}: {text[:300]}")
        s.close()

    long_span: dict[str, float] = {}

    def long_query() -> None:
        time.sleep(seconds / 2 - 10)
        long_span["start"] = time.perf_counter() - t_start
        q = ("SELECT COUNT(*) AS n FROM jsp.refcat AS a, jsp.refcat AS b WHERE a.source_id < 20000 "
             "AND b.source_id < 20000 AND a.g_mag + b.g_mag < 0")
        resp = requests.get(f"{base}/tap/sync", params={"QUERY": q}, headers={"Authorization": f"Bearer {token}"},
                            timeout=120)
        long_span["end"] = time.perf_counter() - t_start
        long_span["status"] = resp.status_code
        long_span["body"] = resp.text[-300:]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    lt = threading.Thread(target=long_query)
    for t in threads:
        t.start()
    lt.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    lt.join()
    with psycopg.connect(dsn) as conn:
        delete_user(conn, "benchlong")
        conn.commit()
    ms = [x[1] for x in lat]
    during = [x[1] for x in lat if long_span.get("start", 1e9) <= x[0] <= long_span.get("end", -1)]
    outside = [x[1] for x in lat if not (long_span.get("start", 1e9) <= x[0] <= long_span.get("end", -1))]
    out = {
        "clients": clients, "seconds": seconds, "requests": len(lat), "errors": len(errors),
        "error_samples": errors[:5], "rps": len(lat) / seconds,
        "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "max_ms": float(max(ms)) if ms else float("nan"),
        "by_kind": {k: {"n": sum(1 for x in lat if x[2] == k), "p50_ms": pct([x[1] for x in lat if x[2] == k], 50),
                        "p95_ms": pct([x[1] for x in lat if x[2] == k], 95)}
                    for k in ("cone1", "cone5", "join_phot", "xmatch")},
        "long_query_s": long_span.get("end", 0) - long_span.get("start", 0),
        "long_query_status": long_span.get("status"),
        "during_long_p50_ms": pct(during, 50), "during_long_p95_ms": pct(during, 95),
        "outside_long_p50_ms": pct(outside, 50), "outside_long_p95_ms": pct(outside, 95),
    }
    say(f"load: {clients} clients x {seconds:.0f} s: {out['requests']} requests ({out['rps']:.0f}/s), "
        f"{out['errors']} errors, p50 {out['p50_ms']:.1f} ms, p95 {out['p95_ms']:.1f} ms; long query "
        f"{out['long_query_s']:.1f} s (HTTP {out['long_query_status']}): p50/p95 during it "
        f"{out['during_long_p50_ms']:.1f}/{out['during_long_p95_ms']:.1f} ms, outside "
        f"{out['outside_long_p50_ms']:.1f}/{out['outside_long_p95_ms']:.1f} ms")
    return out


def to_markdown(res: dict) -> str:
    lines = [f"### TAP benchmark {res['utc']} ({res['machine']}, {res['rows']:,} reference stars, "
             f"{res['server_workers']} uvicorn worker(s))", "", f"Command: `{res['command']}`", ""]
    if "cone" in res:
        c = res["cone"]
        lines += ["| 1' cone, VOTable BINARY2 | p50 | p95 |", "|---|---|---|",
                  f"| raw SQL (psycopg, same HEALPix + q3c SELECT) | {c['raw_sql_ms_p50']:.2f} ms | "
                  f"{c['raw_sql_ms_p95']:.2f} ms |",
                  f"| TAP sync over HTTP | {c['tap_ms_p50']:.2f} ms | {c['tap_ms_p95']:.2f} ms |",
                  f"| **added by the service** (per-cone difference) | **{c['added_ms_p50']:.2f} ms** | "
                  f"{c['added_ms_p95']:.2f} ms |", "",
                  f"{c['cones']} cones, {c['rows_p50']:.0f} rows per cone at p50 (max {c['rows_max']}), "
                  f"{c['votable_bytes_p50'] / 1024:.0f} kB VOTable at p50.", ""]
    if "load" in res:
        ld = res["load"]
        lines += [f"Load: {ld['clients']} concurrent clients for {ld['seconds']:.0f} s: {ld['requests']} requests "
                  f"({ld['rps']:.0f}/s), **{ld['errors']} errors**, p50 {ld['p50_ms']:.1f} ms, "
                  f"p95 {ld['p95_ms']:.1f} ms, max {ld['max_ms']:.0f} ms.", "",
                  "| kind | n | p50 | p95 |", "|---|---|---|---|"]
        for k, v in ld["by_kind"].items():
            lines.append(f"| {k} | {v['n']} | {v['p50_ms']:.1f} ms | {v['p95_ms']:.1f} ms |")
        lines += ["", f"One long query ({ld['long_query_s']:.1f} s, HTTP {ld['long_query_status']}) ran in the "
                      f"middle: p50/p95 of the others while it ran {ld['during_long_p50_ms']:.1f}/"
                      f"{ld['during_long_p95_ms']:.1f} ms, outside it {ld['outside_long_p50_ms']:.1f}/"
                      f"{ld['outside_long_p95_ms']:.1f} ms.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["cone", "load", "all"])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--cones", type=int, default=300)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--server-workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    admin_url = os.environ.get("JSP_DATABASE_URL")
    if not admin_url:
        raise SystemExit("set JSP_DATABASE_URL to an admin database (the benchmark makes its own)")
    url, dsn = setup(admin_url, args.rows)
    port = free_port()
    server = start_server(url, port, args.server_workers)
    base = f"http://127.0.0.1:{port}"
    res = {"utc": dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"), "machine": f"{platform.node()}, "
           f"{os.cpu_count()} cores, Python {platform.python_version()}", "rows": args.rows,
           "command": "JSP_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres /work/venv/bin/python "
                      + " ".join(sys.argv), "server_workers": args.server_workers}
    try:
        if args.what in ("cone", "all"):
            res["cone"] = bench_cone(base, dsn, args.cones)
        if args.what in ("load", "all"):
            res["load"] = bench_load(base, dsn, args.clients, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=20)
        if not args.keep:
            admin = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(make_url(url).database)))
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = RESULTS_DIR / f"tap-{args.what}-{res['utc']}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2))
    md = to_markdown(res)
    stem.with_suffix(".md").write_text(md)
    say("\n" + md)


if __name__ == "__main__":
    main()
