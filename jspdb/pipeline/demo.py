"""The main job end to end, on whatever database is configured.

Start the local cluster (when no ``JSP_DATABASE_URL`` is set), bring the schema
to head, create a release, load a synthetic Gaia-like reference catalog
through the binary-COPY loader, and run a HEALPix-pruned cone search, showing
how many partitions the planner kept. Then the concordance: simulate a small
LSST/Euclid/Roman field, ingest it, start a Celery worker and run the tile
chain (astrometry, photometry, the tile's photometric and astrometric tie and QA plots), and compare
what was stored with the simulator's truth.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from jspdb.config import get_settings
from jspdb.db import migrate
from jspdb.db.engine import connect
from jspdb.db.query import cone_sql, partition_order, refcat_cone
from jspdb.db.release import create_release, get_release
from jspdb.errors import ReleaseError
from jspdb.refcat import load_refcat, synthetic_refcat

__all__ = ["run_demo"]

#: source_ids of the demo rows start here, far from any real catalog's ids.
DEMO_FIRST_ID = 9_000_000_000_000_000


def run_demo(n_rows: int = 200_000, release: str = "demo", console: Console | None = None,
             field_arcmin: float = 1.0) -> dict:
    """Run the demo job; returns what it measured (rows, timings, partitions, concordance)."""
    console = console or Console(soft_wrap=True)  # whole lines in logs, not wrapped at 80
    settings = get_settings()
    if settings.uses_local_cluster:
        from jspdb.db.local import LocalCluster

        cluster = LocalCluster.from_settings(settings)
        started = cluster.start()
        console.print(f"[bold]local database[/] {'started' if started else 'running'} at "
                      f"{cluster.url().render_as_string()} (data in {cluster.datadir})")
    migrate.upgrade()
    console.print(f"[bold]schema[/] at revision {migrate.current()}")

    result: dict = {}
    with connect() as conn:
        try:
            rel = get_release(conn, release)
            console.print(f"[bold]release[/] {release} exists ({rel['state']})")
        except ReleaseError:
            rel = create_release(conn, release, settings.partition_order, {"job": "demo"})
            console.print(f"[bold]release[/] {release} created with {12 * 4 ** rel['partition_order']} "
                          f"partitions per catalog table")

        have = conn.execute("SELECT count(*) FROM jsp.refcat WHERE source_id >= %s", (DEMO_FIRST_ID,)).fetchone()[0]
        if have == 0:
            cols = synthetic_refcat(n_rows, seed=42, first_id=DEMO_FIRST_ID)
            t0 = time.perf_counter()
            with Progress(TextColumn("loading reference catalog"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=console) as bar:
                task = bar.add_task("load", total=n_rows)
                load_refcat(conn, cols, progress=lambda k: bar.advance(task, k))
            conn.commit()
            dt = time.perf_counter() - t0
            console.print(f"[bold]loaded[/] {n_rows:,} rows in {dt:.2f} s ({n_rows / dt:,.0f} rows/s)")
            result["load_rows_per_s"] = n_rows / dt
        else:
            console.print(f"[bold]reference catalog[/] already holds {have:,} demo rows")

        ra, dec, radius = 150.0, 2.0, 3.0 / 60.0
        t0 = time.perf_counter()
        rows = refcat_cone(conn, ra, dec, radius)
        dt = time.perf_counter() - t0
        order = partition_order(conn, "jsp.refcat")
        q, params = cone_sql("jsp.refcat", ra, dec, radius, order)
        plan = conn.execute(b"EXPLAIN (FORMAT JSON) " + q.as_bytes(conn), params).fetchone()[0]
        scanned = _count_scans(plan[0]["Plan"])
        console.print(f"[bold]cone[/] r=3' at ({ra}, {dec}): {len(rows)} sources in {dt * 1000:.1f} ms; "
                      f"planner kept {scanned} of {12 * 4 ** order} partitions")
        for r in rows[:5]:
            console.print(f"  {r['source_id']}  ra={r['ra']:.6f} dec={r['dec']:+.6f}  G={r['g_mag']:.2f}")
        result.update(cone_rows=len(rows), cone_ms=dt * 1000, partitions_scanned=scanned)
    if field_arcmin > 0:
        result.update(_concordance(console, release, field_arcmin))
    return result


def _concordance(console: Console, release: str, field_arcmin: float) -> dict:
    """Simulate, ingest and process a small field on a real worker; print accuracy against the truth."""
    import json
    import os
    import signal
    import subprocess

    from jspdb.ingest.images import ingest_images
    from jspdb.ingest.refcat import ingest_refcat
    from jspdb.jobs.plan import chain, plan_run, send_jobs, sweep, tiles_with_data
    from jspdb.jobs.status import run_status, wait_for_run
    from workers.app import worker_argv

    settings = get_settings()
    field_dir = settings.home / f"demo-field-{field_arcmin:g}arcmin"
    if not (field_dir / "field.json").exists():
        from jspdb.sim.field import FieldSpec, simulate_field
        from jspdb.sim.writers import write_field

        t0 = time.perf_counter()
        with console.status(f"simulating a {field_arcmin:g}'x{field_arcmin:g}' field (LSST, Euclid, Roman) ..."):
            field = simulate_field(FieldSpec(ra=150.1, dec=2.2, size_arcmin=field_arcmin, seed=20261127,
                                             star_density=30.0, lsst_epochs=2), workers=2)
            write_field(field, field_dir)
        console.print(f"[bold]simulated[/] {len(field.images)} images in {time.perf_counter() - t0:.0f} s "
                      f"-> {field_dir}")
    with connect() as conn:
        rep = ingest_images(conn, [field_dir / "images"], tile_order=settings.tile_order,
                            datastore=settings.datastore)
        if rep.ingested:
            ingest_refcat(conn, field_dir / "reference.parquet")
        conn.commit()
        console.print(f"[bold]ingested[/] {len(rep.ingested)} images ({len(rep.skipped)} already there)")
        tiles = tiles_with_data(conn, settings.tile_order, cone=(150.1, 2.2, field_arcmin / 60.0))
        plan = plan_run(conn, release, tiles, settings.tile_order)
        conn.commit()
    log_path = settings.home / "demo-worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(worker_argv(2, "info", "--without-gossip", "--without-mingle"),
                                  stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        from workers.tasks_jobs import send

        with connect() as conn:
            send_jobs(conn, plan.image_jobs, send)
        console.print(f"[bold]worker[/] started (2 processes, log {log_path}); {len(plan.tiles)} tiles, "
                      f"{len(plan.image_jobs)} images")
        wait_for_run(release, 600, lambda c: sweep(c, release, send, stale_after_s=settings.job_stale_after_s),
                     console=console, steps=[s.name for s in chain("astrometry")])
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    with connect() as conn:
        for r in run_status(conn, release):
            console.print(f"  {r['step']:16s} done {r['done']:3d}  failed {r['failed']:2d}  "
                          f"mean {r['mean_s'] or 0:.2f} s  {r['last_error'] or ''}")
        stats = conn.execute(
            "SELECT s.name, count(*), sqrt(avg(a.rms_mas ^ 2)), sqrt(avg(a.sigma_mas ^ 2)), "
            "sqrt(avg(p.zeropoint_err_mag ^ 2)) FROM jsp.astrometric_solution a JOIN jsp.image i USING (image_id) "
            "JOIN jsp.survey s USING (survey_id) JOIN jsp.release r ON r.release_id = a.release_id "
            "LEFT JOIN jsp.photometric_solution p ON p.release_id = a.release_id AND p.image_id = a.image_id "
            "WHERE r.name = %s GROUP BY 1 ORDER BY 1", (release,)).fetchall()
        from jspdb.pipeline.truth import stored_against_truth, summarise

        summary = summarise(stored_against_truth(conn, release, field_dir))
        truth_err = {s: (v["wcs_rms_mas"], v["zp_rms_mmag"] / 1000) for s, v in summary.items()}
    for survey, n, rms, sigma, zp_err in stats:
        t = truth_err.get(survey)
        console.print(f"  {survey:7s} {n:2d} images: star residuals {rms:.1f} mas, predicted error {sigma:.1f} mas"
                      + (f", true error {t[0]:.1f} mas; zero point error {1000 * t[1]:.0f} mmag (truth), "
                         f"{1000 * (zp_err or 0):.0f} mmag (reported)" if t else ""))
    qa = settings.datastore / "qa" / release
    console.print(f"[bold]QA plots[/] in {qa}")
    return {"concordance_images": sum(s[1] for s in stats), "truth_errors": json.loads(json.dumps(truth_err))}


def _count_scans(node: dict) -> int:
    """Number of relation scans in an EXPLAIN (FORMAT JSON) plan tree."""
    n = 1 if "Relation Name" in node else 0
    return n + sum(_count_scans(c) for c in node.get("Plans", []))
