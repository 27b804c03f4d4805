"""What a WCS says about an image: footprint, centre, pixel scale; and the WCS as the database stores it.

Pure functions of an `astropy.wcs.WCS` and the image shape. Every image
(``jsp.image.wcs_header``) and every astrometric solution
(``jsp.astrometric_solution.wcs_header``) keeps its WCS as FITS header cards,
one per line, in a text column: `wcs_to_text` and `wcs_from_text` are the
only way in and out.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from numpy.typing import NDArray

from jspdb.errors import IngestError
from jspdb.healpix import spoly_literal

__all__ = ["footprint", "pixel_scale_arcsec", "spoly_literal", "validated_wcs", "wcs_from_text", "wcs_to_text"]


def validated_wcs(header: fits.Header, shape: tuple[int, int], what: str) -> WCS:
    """A celestial WCS from ``header``, or `IngestError` saying why not.

    Refuses headers with no celestial WCS and singular (non-invertible) ones.
    ``shape`` is (ny, nx).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # survey headers carry harmless non-standard cards
        try:
            w = WCS(header, naxis=2)
        except Exception as exc:  # astropy raises several types for broken WCS cards
            if "singular" in str(exc):
                raise IngestError(f"{what}: singular WCS (its linear transformation matrix is singular)") from exc
            raise IngestError(f"{what}: unreadable WCS: {' '.join(str(exc).split())}") from exc
    if not w.has_celestial:
        raise IngestError(f"{what}: no celestial WCS in the header (CTYPE1/2 missing or not sky)")
    w = w.celestial
    try:
        m = w.pixel_scale_matrix
    except Exception as exc:
        raise IngestError(f"{what}: WCS has no usable pixel scale: {exc}") from exc
    det = float(np.linalg.det(m))
    if not np.isfinite(det) or abs(det) < 1e-24:
        raise IngestError(f"{what}: singular WCS (CD/PC matrix determinant {det:g})")
    ny, nx = shape
    # the four corners must map to finite sky positions
    ra, dec = w.pixel_to_world_values(np.array([0, nx - 1, nx - 1, 0]), np.array([0, 0, ny - 1, ny - 1]))
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise IngestError(f"{what}: WCS does not map the image corners to the sky")
    return w


def pixel_scale_arcsec(w: WCS) -> float:
    """Mean pixel scale, arcsec (square root of the pixel area)."""
    return float(np.sqrt(abs(np.linalg.det(w.pixel_scale_matrix))) * 3600.0)


def footprint(w: WCS, shape: tuple[int, int], per_edge: int = 1) -> tuple[NDArray, NDArray]:
    """Vertices (ra, dec degrees) of the image outline, counter-clockwise on the sky.

    The outline runs along the outer pixel edges (half a pixel beyond the
    centres of the edge pixels). ``per_edge`` > 1 adds points along each edge
    so a distorted WCS is followed closely.
    """
    ny, nx = shape
    t = np.linspace(0.0, 1.0, per_edge, endpoint=False)
    x0, x1, y0, y1 = -0.5, nx - 0.5, -0.5, ny - 0.5
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full_like(t, x1), x1 - (x1 - x0) * t, np.full_like(t, x0)])
    ys = np.concatenate([np.full_like(t, y0), y0 + (y1 - y0) * t, np.full_like(t, y1), y1 - (y1 - y0) * t])
    ra, dec = w.pixel_to_world_values(xs, ys)
    ra = np.mod(ra, 360.0)
    # pgsphere accepts either orientation, but a consistent one keeps
    # footprints comparable: make the vertex order counter-clockwise on the sky
    # (east of north), using the signed area in a tangent plane at the centre.
    c_ra, c_dec = w.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0)
    dra = ((ra - c_ra + 180.0) % 360.0 - 180.0) * np.cos(np.radians(c_dec))
    ddec = dec - c_dec
    area = 0.5 * np.sum(dra * np.roll(ddec, -1) - np.roll(dra, -1) * ddec)
    if area < 0:
        ra, dec = ra[::-1], dec[::-1]
    return ra, dec


def wcs_to_text(wcs: WCS) -> str:
    """The WCS as header cards separated by newlines (SIP and other conventions kept: ``relax=True``)."""
    return wcs.to_header(relax=True).tostring(sep="\n")


def wcs_from_text(text: str, shape: tuple[int, int] | None = None) -> WCS:
    """A WCS from `wcs_to_text`'s text.

    Parameters
    ----------
    text
        Header cards separated by newlines.
    shape
        Image shape (ny, nx), in pixels, to set ``pixel_shape``; optional.
    """
    with warnings.catch_warnings():
        # astropy "fixes" stored headers (e.g. DATE-OBS from MJD-OBS) and says so every time
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(fits.Header.fromstring(text, sep="\n"))
    if shape is not None:
        wcs.pixel_shape = (shape[1], shape[0])
    return wcs
