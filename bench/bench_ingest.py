"""Benchmark of tier-0 ingest (issue: ingest).

- Image ingest rate: N single-epoch LSST-convention files (copies of a
  simulated calexp with distinct visits, so distinct checksums) through the
  whole ingest (headers, WCS checks, pixel NaN check, SHA-256, footprint,
  tiles, datastore registration, batched transactions) with 1 and 2 worker
  processes, in ``reference`` and ``copy`` mode. Baseline in the same run:
  astropy reading the same headers and nothing else (``fits.getheader``).
- Reference-catalog load: the same rows through ``jsp ingest refcat`` (Parquet
  file -> validation -> hpx29 -> partitioned, indexed ``jsp.refcat``) and as a
  raw binary ``COPY`` (psycopg ``write_row``) into a bare UNLOGGED table.

Run:  JSP_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
      python bench/bench_ingest.py [--images 200] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits
from psycopg import sql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from bench_foundation import bare_ddl, prepared, write_row_copy  # noqa: E402

from jspdb.config import Settings  # noqa: E402
from jspdb.db import migrate  # noqa: E402
from jspdb.ingest.images import ingest_images  # noqa: E402
from jspdb.ingest.refcat import ingest_refcat  # noqa: E402
from jspdb.refcat import synthetic_refcat  # noqa: E402


def make_images(src: Path, n: int, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    with fits.open(src) as h:
        for i in range(n):
            h[0].header["VISIT"] = 7_000_000 + i
            h[0].header["MJD-OBS"] = 61000.0 + i * 0.01
            f = out / f"calexp_{i:05d}.fits"
            h.writeto(f, overwrite=True)
            files.append(f)
    return files


def fresh_db(admin_dsn: str, name: str) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(admin_dsn).set(database=name).render_as_string(hide_password=False)


def admin_dsn_from_env() -> str | None:
    """libpq URL of the admin database named by JSP_DATABASE_URL (None, with a hint printed, when unset)."""
    admin = os.environ.get("JSP_DATABASE_URL")
    if not admin:
        print("set JSP_DATABASE_URL to an admin database (e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
        return None
    return make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)


def drop_db(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    admin_dsn = admin_dsn_from_env()
    if admin_dsn is None:
        return 2
    name = f"bench_ingest_{os.getpid()}"
    dsn = fresh_db(admin_dsn, name)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        settings = Settings(database_url=dsn, partition_order=3, tile_order=9, datastore_root=work / "store")
        migrate.upgrade(settings=settings)
        # one simulated LSST calexp as the template
        from jspdb.sim.field import simulate_field
        from jspdb.sim.spec import FieldSpec
        from jspdb.sim.writers import write_field

        field = simulate_field(FieldSpec(ra=150.0, dec=2.0, size_arcmin=1.0, seed=3, surveys=("lsst",),
                                         lsst_epochs=1), workers=1)
        write_field(field, work / "sim")
        template = sorted((work / "sim" / "images" / "lsst").glob("*_r_*.fits"))[0]
        files = make_images(template, args.images, work / "images")
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} files, {mb:.1f} MB ({mb / len(files):.2f} MB each, "
              f"{fits.getheader(files[0], 'IMAGE')['NAXIS1']}x{fits.getheader(files[0], 'IMAGE')['NAXIS2']} px)")

        t0 = time.perf_counter()
        for f in files:
            fits.getheader(f, 0)
            fits.getheader(f, "IMAGE")
        base = len(files) / (time.perf_counter() - t0)
        print(f"baseline astropy getheader (primary + IMAGE): {base:8.1f} files/s")

        results = {}
        for mode in ("reference", "copy"):
            for workers in (1, 2):
                with psycopg.connect(dsn) as c:
                    c.execute("TRUNCATE jsp.image, jsp.tile CASCADE")
                    c.commit()
                shutil.rmtree(work / "store", ignore_errors=True)
                with psycopg.connect(dsn) as c:
                    t0 = time.perf_counter()
                    rep = ingest_images(c, files, tile_order=9, datastore=work / "store", mode=mode,
                                        workers=workers, batch_size=50)
                    dt = time.perf_counter() - t0
                assert len(rep.ingested) == len(files), rep.failed[:3]
                results[(mode, workers)] = len(files) / dt
                print(f"ingest mode={mode:9s} workers={workers}: {len(files) / dt:8.1f} images/s "
                      f"({dt:.2f} s; {base / (len(files) / dt):.1f}x slower than bare header reads)")
        for mode in ("reference", "copy"):
            print(f"scaling {mode}: 2 workers / 1 worker = {results[(mode, 2)] / results[(mode, 1)]:.2f}x")

        # reference catalog: file ingest vs raw COPY of the same rows
        rows = synthetic_refcat(args.rows, seed=9)
        pq.write_table(pa.table(rows), work / "ref.parquet")
        with psycopg.connect(dsn) as c:
            t0 = time.perf_counter()
            res = ingest_refcat(c, work / "ref.parquet")
            c.commit()
            t_ingest = time.perf_counter() - t0
        data, names, types, _ = prepared(rows)
        with psycopg.connect(dsn) as c:
            c.execute(bare_ddl("public.raw_copy", names, types, unlogged=True))
            c.commit()
            t_raw, _ = write_row_copy(c, "public.raw_copy", data, names, types)
        n = res["stars"]
        print(f"refcat ingest (parquet -> partitioned, indexed jsp.refcat): {n / t_ingest:10,.0f} rows/s "
              f"({t_ingest:.2f} s)")
        print(f"raw binary COPY (psycopg write_row) into bare UNLOGGED table: {n / t_raw:10,.0f} rows/s "
              f"({t_raw:.2f} s)")
        print(f"ratio ingest/raw = {t_raw / t_ingest:.2f}x")
    finally:
        drop_db(admin_dsn, name)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
