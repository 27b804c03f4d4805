"""Simulate a whole field in memory: truth, reference catalog, every image, and a summary.

`simulate_field` is pure (a spec in, a `Field` out); `jspdb.sim.writers.write_field`
puts a `Field` on disk. Images are rendered in a process pool (one task per
image; each image has its own random stream, so the result does not depend on
the number of workers or the order in which images finish).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from jspdb.errors import SimulationError
from jspdb.sim.bands import AB_NJY_ZP, get_band, get_survey, point_source_depth
from jspdb.sim.image import SimImage, wcs_from_header
from jspdb.sim.reference import make_reference
from jspdb.sim.render import SOURCE_COLUMNS, render_image
from jspdb.sim.sky import expected_counts, make_truth, sky_to_tangent
from jspdb.sim.spec import FieldSpec
from jspdb.sim.systematics import ImagePlan, plan_images

__all__ = ["BEAM_AREA_FACTOR", "Field", "beams_per_source", "simulate_field"]

#: Solid angle of a Gaussian beam in units of FWHM^2: pi / (4 ln 2).
BEAM_AREA_FACTOR = float(np.pi / (4.0 * np.log(2.0)))

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class Field:
    """A simulated field in memory.

    Attributes
    ----------
    spec
        The request.
    truth
        Truth catalog (see `jspdb.sim.sky.make_truth`).
    reference
        Gaia-like reference catalog (see `jspdb.sim.reference.make_reference`).
    images
        Rendered images, in survey, band, epoch order.
    summary
        Counts, expected counts and beams per source per survey.
    stats
        Timing: ``wall_s``, ``galsim_s`` (summed over workers), ``render_s``
        (summed over workers), ``pixels``, ``workers``.
    """

    spec: FieldSpec
    truth: pa.Table
    reference: pa.Table
    images: list[SimImage]
    summary: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)

    def image(self, image_id: str) -> SimImage:
        """The image called ``image_id``."""
        for im in self.images:
            if im.image_id == image_id:
                return im
        raise SimulationError(f"no image {image_id!r} in this field")


def beams_per_source(
    truth: pa.Table, band: str, fwhm: float, depth: float, ra0: float, dec0: float, size_arcmin: float
) -> dict[str, float]:
    """Confusion figure of a survey: field area over (sources times beam area).

    Parameters
    ----------
    truth
        Truth catalog.
    band
        Band in which sources are counted.
    fwhm
        PSF FWHM in that band, arcsec.
    depth
        Detection limit, AB mag: sources brighter than this are counted.
    ra0, dec0, size_arcmin
        Field centre (deg) and side (arcmin); sources in the margin are not counted.

    Returns
    -------
    dict
        ``n_detectable``, ``n_all`` (sources within the field), ``beam_arcsec2``,
        ``beams_per_source`` (detectable sources) and ``beams_per_source_all``.
    """
    xi, eta = sky_to_tangent(truth.column("ra").to_numpy(), truth.column("dec").to_numpy(), ra0, dec0)
    half = size_arcmin / 120.0
    inside = (np.abs(xi) <= half) & (np.abs(eta) <= half)
    flux = truth.column(f"flux_{band}").to_numpy()
    limit = 10 ** (-0.4 * (depth - AB_NJY_ZP))
    n_det = int(np.count_nonzero(inside & (flux >= limit)))
    n_all = int(np.count_nonzero(inside))
    beam = BEAM_AREA_FACTOR * fwhm**2
    area = (size_arcmin * 60.0) ** 2
    return {
        "band": band,
        "fwhm_arcsec": fwhm,
        "depth_mag": depth,
        "n_detectable": n_det,
        "n_all": n_all,
        "beam_arcsec2": beam,
        "beams_per_source": area / (max(n_det, 1) * beam),
        "beams_per_source_all": area / (max(n_all, 1) * beam),
    }


# --- worker side -----------------------------------------------------------------

_SOURCES: dict[str, np.ndarray] | None = None


def _init_worker(sources: dict[str, np.ndarray]) -> None:
    global _SOURCES
    _SOURCES = sources


def _render_task(index: int, plan: ImagePlan) -> tuple[int, SimImage, dict[str, float]]:
    assert _SOURCES is not None
    image, stats = render_image(plan, _SOURCES)
    return index, image, stats


def _source_arrays(truth: pa.Table) -> dict[str, np.ndarray]:
    cols = [c for c in truth.column_names if c in SOURCE_COLUMNS or c.startswith(("flux_", "leff_"))]
    return {c: truth.column(c).to_numpy() for c in cols}


def simulate_field(
    spec: FieldSpec, *, workers: int | None = None, progress: ProgressCallback | None = None
) -> Field:
    """Render a field in memory.

    Parameters
    ----------
    spec
        The request.
    workers
        Worker processes (default: all cores). 1 renders in this process.
    progress
        Called as ``progress(done, total, image_id)`` after each image.

    Returns
    -------
    Field
        Truth, reference catalog, images, summary and timings.
    """
    t0 = time.perf_counter()
    truth = make_truth(spec)
    reference = make_reference(truth, spec.seed)
    plans = plan_images(spec)
    sources = _source_arrays(truth)
    n = len(plans)
    workers = max(1, min(workers or os.cpu_count() or 1, n))
    results: list[tuple[SimImage, dict[str, float]] | None] = [None] * n
    if workers == 1:
        for i, plan in enumerate(plans):
            results[i] = render_image(plan, sources)
            if progress:
                progress(i + 1, n, plan.image_id)
    else:
        # forkserver: fork() from a process with threads (BLAS, astropy) is unsafe
        ctx = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(sources,)) as pool:
            # biggest images first so the pool drains evenly
            order = sorted(range(n), key=lambda i: -plans[i].nx * plans[i].ny)
            futures = [pool.submit(_render_task, i, plans[i]) for i in order]
            for done, fut in enumerate(as_completed(futures), start=1):
                i, image, stats = fut.result()
                # astropy pickles a WCS through its header text, rounding the CD
                # matrix; rebuild both from the plan so pool and inline agree bit for bit
                image.wcs_true = wcs_from_header(plans[i].wcs_true)
                image.wcs_written = wcs_from_header(plans[i].wcs_written)
                results[i] = (image, stats)
                if progress:
                    progress(done, n, image.image_id)
    images = [r[0] for r in results if r is not None]
    stats_list = [r[1] for r in results if r is not None]
    summary = _summary(spec, truth, reference, images)
    wall = time.perf_counter() - t0
    stats = {
        "wall_s": wall,
        "galsim_s": float(sum(s["galsim_s"] for s in stats_list)),
        "render_s": float(sum(s["total_s"] for s in stats_list)),
        "pixels": float(sum(s["pixels"] for s in stats_list)),
        "sources_drawn": float(sum(s["n_drawn"] for s in stats_list)),
        "workers": float(workers),
    }
    return Field(spec=spec, truth=truth, reference=reference, images=images, summary=summary, stats=stats)


def _summary(spec: FieldSpec, truth: pa.Table, reference: pa.Table, images: list[SimImage]) -> dict[str, Any]:
    kind = truth.column("kind").to_numpy(zero_copy_only=False)
    expect = expected_counts(spec)
    out: dict[str, Any] = {
        "n_galaxies": int(np.count_nonzero(kind == "galaxy")),
        "n_stars": int(np.count_nonzero(kind == "star")),
        "n_bright_stars_added": spec.bright_stars,
        "expected_galaxies": expect["galaxy"],
        "expected_stars": expect["star"],
        "area_deg2": spec.area_deg2,
        "n_reference": reference.num_rows,
        "surveys": {},
    }
    for sname in spec.surveys:
        survey = get_survey(sname)
        band = get_band(survey.ref_band)
        ims = [im for im in images if im.band == band.name]
        fwhm = float(np.median([im.systematics["psf_fwhm_arcsec"] for im in ims]))
        depth = point_source_depth(fwhm, band.pixel_scale, band.sky_e_per_pixel, band.read_noise,
                                   band.zp_exposure)
        out["surveys"][sname] = beams_per_source(truth, band.name, fwhm, depth, spec.ra, spec.dec,
                                                 spec.size_arcmin)
    return out
