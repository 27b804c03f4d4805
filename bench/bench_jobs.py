"""Benchmark of the tile jobs (issue: tile jobs and concordance).

On a simulated field (default 4'x4', all surveys, two LSST epochs), ingested
into a fresh database, the concordance chain (astrometry -> photometry per
image, then the photometric and astrometric tie and QA plots per tile) runs three ways:

- ``direct``: the same step functions called in this process, one after the
  other, each in its own transaction (no broker, no runner, no Celery): the
  baseline;
- Celery with 1 worker process, then with 2 (``celery worker -c N``, the
  default PostgreSQL broker), each into its own release, timed from the
  first message to the last job finished.

Reported: tiles per hour per worker process, the 1 -> 2 scaling ratio, and
the per-task overhead of the job machinery: Celery's own task time (from
its log, "succeeded in") minus the step time inside it, over the step time
(aim: under 5 %). Also the wall-clock cost of the whole machinery (broker
latency, locks, fan-in) against the direct baseline.

Run:  JSP_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
      python bench/bench_jobs.py [--size-arcmin 4] [--field-dir /tmp/jsp-bench-field]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import admin_dsn_from_env, drop_db, fresh_db  # noqa: E402

from jspdb.config import Settings  # noqa: E402
from jspdb.db import migrate  # noqa: E402
from jspdb.db.release import create_release  # noqa: E402
from jspdb.ingest.images import ingest_images  # noqa: E402
from jspdb.ingest.refcat import ingest_refcat  # noqa: E402
from jspdb.jobs.plan import plan_run, tiles_with_data  # noqa: E402
from jspdb.jobs.steps import Unit, get_step  # noqa: E402

SUCCEEDED = re.compile(r"Task jspdb\.jobs\.run\[[^\]]+\] succeeded in ([0-9.eE+-]+)s")


def make_field(size: float, out: Path, star_density: float) -> Path:
    if (out / "field.json").exists():
        return out
    from jspdb.sim.field import FieldSpec, simulate_field
    from jspdb.sim.writers import write_field

    t0 = time.perf_counter()
    field = simulate_field(FieldSpec(ra=150.1, dec=2.2, size_arcmin=size, seed=4242, star_density=star_density,
                                     lsst_epochs=2), workers=2)
    write_field(field, out)
    print(f"simulated a {size}'x{size}' field in {time.perf_counter() - t0:.0f} s -> {out}")
    return out


def load_into_fresh_db(admin_dsn: str, name: str, field: Path, work: Path):
    """A fresh database ``name`` migrated to head with the field's images and reference catalog ingested.

    Returns (libpq URL, settings, ingest report).
    """
    url = fresh_db(admin_dsn, name)
    settings = Settings(database_url=make_url(url).set(drivername="postgresql+psycopg").render_as_string(
        hide_password=False), datastore_root=work / "datastore")
    migrate.upgrade("head", settings=settings)
    with psycopg.connect(url) as c:
        rep = ingest_images(c, [field / "images"], tile_order=settings.tile_order, datastore=settings.datastore)
        ingest_refcat(c, field / "reference.parquet")
        c.commit()
    return url, settings, rep


def run_direct(dsn: str, settings: Settings, release: str) -> tuple[float, int, int]:
    """Every step of the chain in this process; returns (wall s, tiles, images)."""
    with psycopg.connect(dsn) as c:
        rid = create_release(c, release, settings.partition_order)["release_id"]
        c.commit()
        tiles = tiles_with_data(c, settings.tile_order)
        images = [r[0] for r in c.execute("SELECT DISTINCT image_id FROM jsp.image_tile WHERE tile_order = %s "
                                          "ORDER BY 1", (settings.tile_order,))]
        c.commit()
        t0 = time.perf_counter()
        for image_id in images:
            for name in ("astrometry", "photometry"):
                try:
                    with c.transaction():
                        get_step(name).run(c, Unit(rid, release, image_id=image_id))
                except ValueError:
                    break  # too few stars: the chain of this image stops, as in the runner
        for t in tiles:
            with c.transaction():
                get_step("tie").run(c, Unit(rid, release, tile_order=settings.tile_order, tile_ipix=t))
        c.commit()
        return time.perf_counter() - t0, len(tiles), len(images)


def run_celery(dsn: str, settings: Settings, release: str, procs: int, logdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSP_")}
    env.update(JSP_DATABASE_URL=settings.database_url, JSP_DATASTORE_ROOT=str(settings.datastore),
               JSP_PARTITION_ORDER=str(settings.partition_order), JSP_QUEUE=f"bench-{release}",
               PYTHONWARNINGS="ignore")
    from workers.app import worker_argv

    log_path = logdir / f"worker-{release}.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(worker_argv(procs, "info", "--without-gossip", "--without-mingle",
                                              "--without-heartbeat", queue=env["JSP_QUEUE"]),
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while " ready." not in log_path.read_text():
            if worker.poll() is not None:
                raise RuntimeError(log_path.read_text())
            time.sleep(0.2)
        with psycopg.connect(dsn) as c:
            rid = create_release(c, release, settings.partition_order)["release_id"]
            c.commit()
            plan = plan_run(c, release, tiles_with_data(c, settings.tile_order), settings.tile_order)
            c.commit()
        # the message goes through the same broker and queue as the worker's
        code = ("import sys; from workers.tasks_jobs import send; [send(int(a)) for a in sys.argv[1:]]")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, *map(str, plan.image_jobs)], env=env, check=True)
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("UPDATE jsp.tile_job SET state = 'queued', queued_at = now() WHERE job_id = ANY(%s)",
                      (plan.image_jobs,))
            while True:
                left = c.execute("SELECT count(*) FROM jsp.tile_job WHERE release_id = %s AND state NOT IN "
                                 "('done', 'failed')", (rid,)).fetchone()[0]
                if left == 0:
                    break
                time.sleep(0.05)
            wall = time.perf_counter() - t0
            step_s, n_jobs, n_failed = c.execute(
                "SELECT sum(duration_s), count(*), count(*) FILTER (WHERE state = 'failed') FROM jsp.tile_job "
                "WHERE release_id = %s", (rid,)).fetchone()
    finally:
        worker.terminate()
        worker.wait(60)
    task_s = [float(m) for m in SUCCEEDED.findall(log_path.read_text())]
    return {"wall": wall, "step_s": step_s, "task_s": sum(task_s), "n_tasks": len(task_s), "jobs": n_jobs,
            "failed": n_failed, "tiles": len(plan.tiles)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-arcmin", type=float, default=4.0)
    ap.add_argument("--star-density", type=float, default=30.0)
    ap.add_argument("--field-dir", type=Path, default=Path(tempfile.gettempdir()) / "jsp-bench-jobs-field")
    args = ap.parse_args()
    admin_dsn = admin_dsn_from_env()
    if admin_dsn is None:
        return 2
    field = make_field(args.size_arcmin, args.field_dir, args.star_density)
    name = f"bench_jobs_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="jsp-bench-jobs-"))
    try:
        url, settings, rep = load_into_fresh_db(admin_dsn, name, field, work)
        print(f"field: {args.size_arcmin}'x{args.size_arcmin}', {len(rep.ingested)} images")
        direct, n_tiles, n_images = run_direct(url, settings, "direct")
        print(f"direct (in process, no broker): {direct:.1f} s for {n_tiles} tiles, {n_images} images")
        res = {p: run_celery(url, settings, f"celery{p}", p, work) for p in (1, 2)}
        print()
        print(f"{'worker processes':>16s} {'wall s':>8s} {'tiles/h/proc':>12s} {'jobs':>5s} {'failed':>6s} "
              f"{'step s':>8s} {'task s':>8s} {'task overhead':>13s} {'wall vs direct':>14s}")
        for p, r in res.items():
            overhead = (r["task_s"] - r["step_s"]) / r["step_s"]
            print(f"{p:16d} {r['wall']:8.1f} {r['tiles'] / (r['wall'] / 3600) / p:12.1f} {r['jobs']:5d} "
                  f"{r['failed']:6d} {r['step_s']:8.1f} {r['task_s']:8.1f} {100 * overhead:12.1f}% "
                  f"{r['wall'] / direct:13.2f}x")
        out = Path(__file__).resolve().parent / "results" / f"jobs-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"size_arcmin": args.size_arcmin, "direct_s": direct, "tiles": n_tiles,
                                   "images": n_images, "celery": res}, indent=2))
        print(f"results in {out}")
        print(f"\nscaling 1 -> 2 processes: {res[1]['wall'] / res[2]['wall']:.2f}x (ideal 2.00x on 2 cores)")
        print(f"per-task overhead (task time - step time) / step time: 1 proc "
              f"{100 * (res[1]['task_s'] - res[1]['step_s']) / res[1]['step_s']:.1f}%, 2 procs "
              f"{100 * (res[2]['task_s'] - res[2]['step_s']) / res[2]['step_s']:.1f}% (aim < 5%)")
    finally:
        drop_db(admin_dsn, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
