"""Measurement helpers shared by the simulator tests (sep, GalSim and the truth)."""

from __future__ import annotations

import galsim
import numpy as np
import sep

from jspdb.sim.field import Field
from jspdb.sim.image import MASK_BITS, SimImage
from jspdb.sim.render import positions_at_epoch
from jspdb.sim.systematics import mjd_to_jyear


def truth_pixels(field: Field, image: SimImage) -> dict[str, np.ndarray]:
    """True pixel positions (1-based) and band fluxes of all truth sources at the image's epoch."""
    t = field.truth
    ra, dec = positions_at_epoch(
        t.column("ra").to_numpy(), t.column("dec").to_numpy(), t.column("pmra").to_numpy(),
        t.column("pmdec").to_numpy(), t.column("ref_epoch").to_numpy(), mjd_to_jyear(image.mjd),
    )
    x, y = image.wcs_true.all_world2pix(ra, dec, 1)
    return {
        "x": x,
        "y": y,
        "ra": ra,
        "dec": dec,
        "flux": t.column(f"flux_{image.band}").to_numpy(),
        "leff": t.column(f"leff_{image.band}").to_numpy(),
        "star": t.column("kind").to_numpy(zero_copy_only=False) == "star",
        "id": t.column("id").to_numpy(),
    }


def isolated_stars(
    field: Field, image: SimImage, radius_arcsec: float, min_snr: float
) -> list[dict[str, float]]:
    """Unflagged, unsaturated truth stars on the image with no comparable neighbour.

    A star qualifies when it is at least ``radius_arcsec`` + 1 arcsec from the edges,
    its predicted S/N in that aperture exceeds ``min_snr``, no other source
    within ``2 * radius_arcsec`` has more than 2 per cent of its flux, and no
    mask bit is set within the aperture. ``contamination`` is the summed flux of
    the fainter neighbours within that distance (nJy), an upper bound on what
    they can add to the aperture.
    """
    tp = truth_pixels(field, image)
    scale = image.band_info.pixel_scale
    r_pix = radius_arcsec / scale
    ny, nx = image.shape
    edge = r_pix + 1.0 / scale
    sigma_pix = float(np.sqrt(np.median(image.variance)))
    out = []
    for k in np.flatnonzero(tp["star"]):
        x, y, f = tp["x"][k], tp["y"][k], tp["flux"][k]
        if not (edge < x < nx - edge and edge < y < ny - edge):
            continue
        f_units = float(image.njy_to_units(f))
        noise = sigma_pix * np.sqrt(np.pi) * r_pix
        if f_units / noise < min_snr:
            continue
        d = np.hypot(tp["x"] - x, tp["y"] - y) * scale
        near = (d < 2 * radius_arcsec) & (np.arange(d.size) != k)
        if np.any(tp["flux"][near] > 0.02 * f):
            continue
        yy, xx = np.ogrid[:ny, :nx]
        inside = (xx + 1 - x) ** 2 + (yy + 1 - y) ** 2 <= (r_pix + 1) ** 2
        if np.any(image.mask[inside] != 0):
            continue
        out.append({"x": float(x), "y": float(y), "flux": float(f), "leff": float(tp["leff"][k]),
                    "contamination": float(np.sum(tp["flux"][near])), "id": int(tp["id"][k])})
    return out


def aperture_fraction(image: SimImage, x: float, y: float, leff: float, radius_pix: float) -> float:
    """Fraction of a point source's flux inside a circular aperture, from the image's own PSF model.

    The PSF is drawn (with the pixel response, at the star's sub-pixel phase) on a
    large stamp and measured with the same `sep.sum_circle` call as the data.
    """
    scale = image.band_info.pixel_scale
    psf = image.psf.profile(x, y, leff)
    n = int(2 * (radius_pix + 60))
    dx, dy = x - np.floor(x), y - np.floor(y)
    img = psf.withFlux(1.0).drawImage(nx=n, ny=n, scale=scale, offset=galsim.PositionD(dx, dy))
    arr = np.ascontiguousarray(img.array, dtype=np.float64)
    cx = (n + 1) / 2.0 + dx - 1.0
    cy = (n + 1) / 2.0 + dy - 1.0
    frac, _, _ = sep.sum_circle(arr, [cx], [cy], radius_pix, subpix=10)
    return float(frac[0])


def measure_aperture(image: SimImage, x: float, y: float, radius_pix: float) -> tuple[float, float]:
    """Aperture sum and its error (image units) at 1-based pixel (x, y)."""
    data = np.ascontiguousarray(image.science, dtype=np.float64)
    var = np.ascontiguousarray(image.variance, dtype=np.float64)
    flux, err, _ = sep.sum_circle(data, [x - 1.0], [y - 1.0], radius_pix, var=var, subpix=10)
    return float(flux[0]), float(err[0])


def good_mask(image: SimImage) -> np.ndarray:
    """Boolean mask of pixels flagged bad, saturated or hit by a cosmic ray."""
    bits = (1 << MASK_BITS["BAD"]) | (1 << MASK_BITS["SAT"]) | (1 << MASK_BITS["CR"])
    return (image.mask & bits) != 0
