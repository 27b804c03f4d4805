"""Fake-source injection: add stars or galaxies to an existing image through its own PSF.

This is the tool for completeness, reliability and photometric-bias studies:
inject sources of known flux and shape, run the pipeline, compare. Sources are
placed with the image's *true* WCS and scaled with its *true* zero point, so
they land where the sky says they are, exactly as the rendered sky did.
"""

from __future__ import annotations

from collections.abc import Mapping

import galsim
import numpy as np
import pyarrow as pa
from numpy.typing import ArrayLike

from jspdb.errors import SimulationError
from jspdb.sim.image import MASK_BITS, SimImage, wcs_to_header
from jspdb.sim.render import PHOT_THRESHOLD_E, draw_sources, local_jacobian

__all__ = ["INJECTED_BIT", "MORPHOLOGY_COLUMNS", "inject_sources"]

#: Mask bit set where an injected source adds more than 1 sigma of noise.
INJECTED_BIT = MASK_BITS["INJECTED"]

#: Optional extended-source columns (see `jspdb.sim.render.galaxy_profile`); a missing
#: or NaN ``bulge_fraction`` means a point source.
MORPHOLOGY_COLUMNS = ("bulge_fraction", "bulge_n", "bulge_hlr", "bulge_e", "disk_hlr", "disk_e", "pa")


def _column(sources: Mapping[str, ArrayLike] | pa.Table, name: str) -> np.ndarray | None:
    if isinstance(sources, pa.Table):
        return sources.column(name).to_numpy() if name in sources.column_names else None
    return np.asarray(sources[name], dtype=float) if name in sources else None


def inject_sources(
    image: SimImage,
    sources: Mapping[str, ArrayLike] | pa.Table,
    *,
    seed: int,
    add_noise: bool = True,
) -> tuple[SimImage, pa.Table]:
    """Add sources to a copy of ``image``.

    Parameters
    ----------
    image
        Image to inject into (not modified).
    sources
        Columns: ``ra``, ``dec`` (deg, at the image's epoch) and ``flux`` (nJy in the
        image's band) are required; ``leff`` (effective wavelength in the band, nm;
        default the band's) and the extended-source columns `MORPHOLOGY_COLUMNS`
        (radii in arcsec, position angle in deg east of north) are optional.
    seed
        Seed for the photon shooting and the added noise.
    add_noise
        Add the injected sources' Poisson noise (Gaussian approximation) and their
        variance to the variance plane. Without it, the difference between the
        returned and the input image is the noiseless model.

    Returns
    -------
    image : SimImage
        A copy with the sources added (mask bit `INJECTED_BIT` where they add more
        than 1 sigma).
    truth : pyarrow.Table
        One row per source: ``inject_id``, ``ra``, ``dec`` (deg), ``x``, ``y``
        (1-based FITS pixel of the true WCS), ``flux`` (nJy), ``flux_image``
        (total in the image's unit), ``kind`` (``"point"`` or ``"extended"``),
        ``on_image`` (centre inside the image).
    """
    ra = _column(sources, "ra")
    dec = _column(sources, "dec")
    flux = _column(sources, "flux")
    if ra is None or dec is None or flux is None:
        raise SimulationError("inject_sources needs columns 'ra', 'dec' and 'flux' (nJy)")
    n = ra.size
    if dec.size != n or flux.size != n:
        raise SimulationError("inject_sources: 'ra', 'dec' and 'flux' differ in length")
    if np.any(~np.isfinite(flux)) or np.any(flux < 0):
        raise SimulationError("inject_sources: fluxes must be finite and non-negative (nJy)")
    leff = _column(sources, "leff")
    if leff is None:
        leff = np.full(n, np.nan)
    morph = {}
    for c in MORPHOLOGY_COLUMNS:
        col = _column(sources, c)
        morph[c] = np.full(n, np.nan) if col is None else np.asarray(col, dtype=float)
    extended = np.isfinite(morph["bulge_fraction"])
    needed = [c for c in MORPHOLOGY_COLUMNS if c != "bulge_fraction"]
    if np.any(extended) and any(not np.all(np.isfinite(morph[c][extended])) for c in needed):
        raise SimulationError(f"inject_sources: extended sources need all of {list(MORPHOLOGY_COLUMNS)}")

    x, y = image.wcs_true.all_world2pix(ra, dec, 1)
    ny, nx = image.shape
    e = image.e_per_unit
    flux_units = image.njy_to_units(flux)
    jac = local_jacobian(wcs_to_header(image.wcs_true))
    fft_img = galsim.ImageF(nx, ny, wcs=jac)
    phot_img = galsim.ImageF(nx, ny, wcs=jac)
    rng = galsim.BaseDeviate(int(seed) + 1)
    # without noise, draw every source by FFT (photon shooting carries Poisson noise)
    draw_sources(fft_img, phot_img, image.psf, x, y, flux_units * e, leff, morph, rng,
                 phot_threshold=PHOT_THRESHOLD_E if add_noise else 0.0)
    model_e = fft_img.array.astype(np.float64) + phot_img.array
    out = image.copy()
    added_e = model_e.copy()
    if add_noise:
        var = galsim.Image(np.maximum(fft_img.array, 0.0).astype(np.float64))
        noise = galsim.Image(np.zeros_like(model_e))
        noise.addNoise(galsim.VariableGaussianNoise(galsim.BaseDeviate(int(seed) + 2), var))
        added_e += noise.array
        out.variance = (out.variance + np.maximum(model_e, 0.0) / e**2).astype(np.float32)
    out.science = (out.science + added_e / e).astype(np.float32)
    sigma = np.sqrt(np.maximum(image.variance, 0.0))
    out.mask = out.mask | np.where(model_e / e > sigma, np.int32(1 << INJECTED_BIT), np.int32(0))
    on = (x >= 0.5) & (x <= nx + 0.5) & (y >= 0.5) & (y <= ny + 0.5)
    truth = pa.table({
        "inject_id": pa.array(np.arange(n, dtype=np.int64)),
        "ra": pa.array(ra),
        "dec": pa.array(dec),
        "x": pa.array(np.asarray(x, dtype=float)),
        "y": pa.array(np.asarray(y, dtype=float)),
        "flux": pa.array(np.asarray(flux, dtype=float)),
        "flux_image": pa.array(np.asarray(flux_units, dtype=float)),
        "kind": pa.array(np.where(extended, "extended", "point").tolist(), type=pa.string()),
        "on_image": pa.array(on),
    })
    return out, truth

