"""Accuracy of the concordance on a larger simulated field, from the database, against the truth.

The tests measure the concordance on a 1'x1' field, where each image holds
only ~10-15 stars whose reference magnitudes are precise: that, not the
method, limits the zero points there. This report runs the same chain on a
larger star-rich field (default 2'x2', 150x the star counts, two LSST
epochs), ingested into a fresh database, with the jobs' own runner in this
process (`run_job`; the worker machinery is measured by bench_jobs.py), and
prints every image's stored solution against the simulator's truth:

- astrometry: rms sky error of the tied WCS (and of the image's own solution
  before the tie) over the image, per image and survey; the survey-to-survey
  offset (mean error at the image centres);
- photometry: tied zero point minus the true one (and the image's own,
  reference-only zero point), per image and survey; the cross-survey tie (each
  survey's mean offset minus LSST's).

Run:  JSP_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
      python bench/bench_concordance.py [--size-arcmin 2] [--star-density 150]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import psycopg
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import admin_dsn_from_env, drop_db  # noqa: E402
from bench_jobs import load_into_fresh_db, make_field  # noqa: E402

from jspdb.config import Settings, reset_settings  # noqa: E402
from jspdb.db.release import create_release  # noqa: E402
from jspdb.jobs.plan import plan_run, tiles_with_data  # noqa: E402
from jspdb.jobs.runner import run_job  # noqa: E402
from jspdb.pipeline.truth import stored_against_truth, summarise  # noqa: E402

TARGETS = {"astrometry_mas": {"lsst": 10.0, "euclid": 5.0, "roman": 5.0}, "survey_offset_mas": 3.0,
           "zp_rms_mmag": 5.0, "cross_survey_tie_mmag": 5.0}


def run_chain(url: str, settings: Settings) -> tuple[float, int]:
    """The whole chain into release dr1, job by job through the runner; returns (wall s, jobs)."""
    with psycopg.connect(url) as c:
        create_release(c, "dr1", settings.partition_order)
        plan = plan_run(c, "dr1", tiles_with_data(c, settings.tile_order), settings.tile_order)
        c.commit()
    queue, n, t0 = list(plan.image_jobs), 0, time.perf_counter()
    with Progress() as bar:
        task = bar.add_task("concordance jobs", total=len(queue) * 2 + len(plan.tiles))
        while queue:
            out = run_job(url, queue.pop(0), send=queue.append)
            if out.outcome != "done":
                bar.console.print(f"job {out.job_id}: {out.outcome} {out.detail}")
            n += 1
            bar.advance(task)
    return time.perf_counter() - t0, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-arcmin", type=float, default=2.0)
    ap.add_argument("--star-density", type=float, default=150.0)
    ap.add_argument("--field-dir", type=Path, default=None)
    args = ap.parse_args()
    admin_dsn = admin_dsn_from_env()
    if admin_dsn is None:
        return 2
    field_dir = args.field_dir or (Path(tempfile.gettempdir()) /
                                   f"jsp-bench-concordance-{args.size_arcmin:g}-{args.star_density:g}")
    field = make_field(args.size_arcmin, field_dir, args.star_density)
    name = f"bench_concordance_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="jsp-bench-concordance-"))
    try:
        url, settings, rep = load_into_fresh_db(admin_dsn, name, field, work)
        # the steps read the process settings (the tie step writes its QA plots to the datastore)
        os.environ["JSP_DATABASE_URL"], os.environ["JSP_DATASTORE_ROOT"] = settings.database_url, str(work / "datastore")
        reset_settings()
        wall, jobs = run_chain(url, settings)
        with psycopg.connect(url) as c:
            rows = stored_against_truth(c, "dr1", field)
            n_ref = c.execute("SELECT count(*) FROM jsp.refcat").fetchone()[0]
        summary = summarise(rows)
        print(f"\nfield {args.size_arcmin:g}'x{args.size_arcmin:g}', star density x{args.star_density:g}: "
              f"{len(rep.ingested)} images, {n_ref} reference stars; {jobs} jobs in {wall:.0f} s\n")
        print(f"{'image':16s} {'WCS own':>8s} {'tied':>6s} {'sigma':>6s}   {'zp own':>8s} {'tied':>7s} {'+-':>6s} "
              "(mas; zero points minus truth, mmag)")
        for r in rows:
            print(f"{r.name:16s} {r.own_wcs_error_mas:8.2f} {r.wcs_error_mas:6.2f} {r.sigma_mas:6.2f}   "
                  f"{1000 * r.own_zp_error_mag:8.1f} {1000 * r.zp_error_mag:7.1f} {1000 * r.zp_err_mag:6.1f}")
        print()
        print(f"{'survey':8s} {'n':>3s} {'WCS rms own':>11s} {'tied':>6s} {'max':>6s} {'zp rms own':>10s} {'tied':>6s} "
              f"{'zp mean':>8s} {'centre offset (mas)':>20s}")
        for s, v in summary.items():
            print(f"{s:8s} {v['n']:3d} {v['own_wcs_rms_mas']:11.2f} {v['wcs_rms_mas']:6.2f} {v['wcs_max_mas']:6.2f} "
                  f"{v['own_zp_rms_mmag']:10.1f} {v['zp_rms_mmag']:6.1f} {v['zp_mean_mmag']:8.1f} "
                  f"({v['centre_dra_mas']:+.2f}, {v['centre_ddec_mas']:+.2f})")
        offset = max(np.hypot(summary[a]["centre_dra_mas"] - summary[b]["centre_dra_mas"],
                              summary[a]["centre_ddec_mas"] - summary[b]["centre_ddec_mas"])
                     for a, b in combinations(summary, 2))
        tie = {s: summary[s]["zp_mean_mmag"] - summary["lsst"]["zp_mean_mmag"] for s in summary if s != "lsst"}
        print(f"\nagainst the targets ({json.dumps(TARGETS)}):")
        for s, v in summary.items():
            print(f"  astrometry {s}: max {v['wcs_max_mas']:.2f} mas "
                  f"({'met' if v['wcs_max_mas'] <= TARGETS['astrometry_mas'][s] else 'missed'})")
        print(f"  survey-to-survey offset: {offset:.2f} mas "
              f"({'met' if offset <= TARGETS['survey_offset_mas'] else 'missed'})")
        for s, v in summary.items():
            print(f"  zero point rms {s}: {v['zp_rms_mmag']:.1f} mmag "
                  f"({'met' if v['zp_rms_mmag'] <= TARGETS['zp_rms_mmag'] else 'missed'})")
        for s, v in tie.items():
            print(f"  cross-survey tie {s} - lsst: {v:+.1f} mmag "
                  f"({'met' if abs(v) <= TARGETS['cross_survey_tie_mmag'] else 'missed'})")
        out = Path(__file__).resolve().parent / "results" / f"concordance-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"size_arcmin": args.size_arcmin, "star_density": args.star_density,
                                   "images": len(rep.ingested), "reference_stars": n_ref, "wall_s": wall,
                                   "summary": summary, "survey_offset_mas": offset, "cross_survey_tie_mmag": tie,
                                   "images_vs_truth": [r.__dict__ for r in rows]}, indent=2))
        print(f"results in {out}")
    finally:
        drop_db(admin_dsn, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
