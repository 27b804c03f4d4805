"""Benchmark the simulator: a field in all three surveys at default and at 4x density.

Prints, per density: images, pixels rendered, sources drawn, wall time, pixels
per second, and the share of the rendering time spent inside GalSim (profile
construction, drawing and noise) versus jspdb's own code (truth, planning,
positions, masks, systematics, process-pool overhead, and writing the files).

Usage::

    /work/venv/bin/python bench/bench_sim.py --size-arcmin 4 --densities 1,4 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from jspdb.sim.field import simulate_field
from jspdb.sim.spec import FieldSpec
from jspdb.sim.writers import write_field


def run(size_arcmin: float, density: float, seed: int, workers: int, out: Path | None) -> dict[str, float]:
    """Render and write one field; return its timings."""
    spec = FieldSpec(ra=150.1, dec=2.2, size_arcmin=size_arcmin, seed=seed, density=density)
    t0 = time.perf_counter()
    field = simulate_field(spec, workers=workers)
    t_sim = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="bench_sim_")) if out is None else out
    t1 = time.perf_counter()
    write_field(field, tmp)
    t_write = time.perf_counter() - t1
    if out is None:
        shutil.rmtree(tmp)
    st = field.stats
    return {
        "density": density,
        "images": len(field.images),
        "sources": field.truth.num_rows,
        "draws": st["sources_drawn"],
        "pixels": st["pixels"],
        "sim_wall_s": t_sim,
        "write_s": t_write,
        "wall_s": t_sim + t_write,
        "render_cpu_s": st["render_s"],
        "galsim_cpu_s": st["galsim_s"],
        "lsst_beams": field.summary["surveys"]["lsst"]["beams_per_source"],
        "lsst_beams_all": field.summary["surveys"]["lsst"]["beams_per_source_all"],
        "roman_beams_all": field.summary["surveys"]["roman"]["beams_per_source_all"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-arcmin", type=float, default=4.0)
    ap.add_argument("--densities", default="1,4")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=None, help="Keep the files here (default: temporary).")
    args = ap.parse_args()
    print(f"# jsp sim benchmark: {args.size_arcmin}'x{args.size_arcmin}' field, lsst+euclid+roman, "
          f"{args.workers} workers, {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    header = ("| density | sources (truth) | images | source draws | Mpix | wall (s) | of which render (s) "
              "| write (s) "
              "| Mpix/s | draws/s | GalSim share of render CPU | own code share of render CPU "
              "| LSST r beams/source (detectable / all) | Roman F158 beams/source (all) |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for d in [float(x) for x in args.densities.split(",")]:
        out = args.out / f"density_{d:g}" if args.out else None
        r = run(args.size_arcmin, d, args.seed, args.workers, out)
        # CPU time summed over the workers: inside GalSim (profiles, drawing, noise)
        # versus the rest of render_image (positions, masks, systematics, conversion)
        galsim_share = r["galsim_cpu_s"] / r["render_cpu_s"]
        print(
            f"| {d:g} | {r['sources']} | {r['images']} | {r['draws']:.0f} | {r['pixels'] / 1e6:.1f} "
            f"| {r['wall_s']:.1f} | {r['sim_wall_s']:.1f} | {r['write_s']:.1f} "
            f"| {r['pixels'] / 1e6 / r['wall_s']:.2f} | {r['draws'] / r['wall_s']:.0f} "
            f"| {100 * galsim_share:.1f}% "
            f"| {100 * (1 - galsim_share):.1f}% "
            f"| {r['lsst_beams']:.0f} / {r['lsst_beams_all']:.1f} | {r['roman_beams_all']:.0f} |",
            flush=True,
        )

if __name__ == "__main__":
    main()
