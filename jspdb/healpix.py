"""HEALPix helpers (NESTED ordering everywhere).

Every catalog row carries ``hpx29``, its nested index at order 29, so the
pixel at any coarser order is a right shift by ``2 * (29 - order)`` bits and
the rows of a coarse pixel are one contiguous ``hpx29`` range. Pixel
arithmetic is delegated to CDS's ``cdshealpix`` (Rust core, vectorised).
"""

from __future__ import annotations

import astropy.units as u
import cdshealpix.nested as chp
import numpy as np
from astropy.coordinates import Latitude, Longitude
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MAX_ORDER",
    "boundary_spoly",
    "cone_ranges",
    "hpx29",
    "merge_ranges",
    "pixel_boundary",
    "pixel_range29",
    "polygon_ranges",
    "spoly_literal",
    "tile_index",
    "to_order",
]

#: Deepest order (nside = 2**29); its indices fit a signed 64-bit integer.
MAX_ORDER = 29


def _check_order(order: int) -> int:
    order = int(order)
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"HEALPix order must be within 0..{MAX_ORDER}, got {order}")
    return order


def _lonlat(ra: ArrayLike, dec: ArrayLike) -> tuple[Longitude, Latitude]:
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ValueError("ra and dec must be finite")
    if np.any(np.abs(dec) > 90.0):
        raise ValueError("dec must lie within [-90, 90] degrees")
    # ra = -10 and ra = 350 are the same point; "+ 0.0" turns -0.0 into +0.0,
    # which cdshealpix would otherwise place just below 360 deg.
    return Longitude(np.mod(ra, 360.0) + 0.0, unit=u.deg), Latitude(dec, unit=u.deg)


def tile_index(ra: ArrayLike, dec: ArrayLike, order: int) -> NDArray[np.int64]:
    """Nested HEALPix index of each position at ``order``.

    Parameters
    ----------
    ra, dec : array_like
        ICRS right ascension and declination, degrees (any RA, wrapped to
        [0, 360)).
    order : int
        HEALPix order (nside = 2**order), 0..29.

    Returns
    -------
    numpy.ndarray of int64
        Nested pixel indices, same shape as the inputs.
    """
    order = _check_order(order)
    lon, lat = _lonlat(ra, dec)
    return chp.lonlat_to_healpix(lon, lat, order).astype(np.int64)


def hpx29(ra: ArrayLike, dec: ArrayLike) -> NDArray[np.int64]:
    """Nested HEALPix index at order 29 (the ``hpx29`` column), vectorised.

    Parameters
    ----------
    ra, dec : array_like
        ICRS right ascension and declination, degrees.

    Returns
    -------
    numpy.ndarray of int64
    """
    return tile_index(ra, dec, MAX_ORDER)


def to_order(index29: ArrayLike, order: int) -> NDArray[np.int64]:
    """Coarsen order-29 nested indices to ``order`` (a bit shift)."""
    order = _check_order(order)
    return np.asarray(index29, dtype=np.int64) >> (2 * (MAX_ORDER - order))


def pixel_range29(ipix: ArrayLike, order: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Half-open ``hpx29`` range ``[lo, hi)`` covered by pixels at ``order``."""
    order = _check_order(order)
    shift = 2 * (MAX_ORDER - order)
    ipix = np.asarray(ipix, dtype=np.int64)
    return ipix << shift, (ipix + 1) << shift


def merge_ranges(lo: ArrayLike, hi: ArrayLike) -> NDArray[np.int64]:
    """Sort half-open ranges and merge those that touch or overlap.

    Returns
    -------
    numpy.ndarray of int64, shape (n, 2)
        Disjoint ``[lo, hi)`` ranges in increasing order.
    """
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    if lo.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    # A new run starts wherever a range begins after the furthest end so far.
    run_end = np.maximum.accumulate(hi)
    starts = np.ones(lo.size, dtype=bool)
    starts[1:] = lo[1:] > run_end[:-1]
    idx = np.flatnonzero(starts)
    ends = np.append(idx[1:], lo.size) - 1
    return np.column_stack([lo[idx], run_end[ends]])


def _moc_to_ranges(ipix: NDArray, depth: NDArray) -> NDArray[np.int64]:
    ipix = ipix.astype(np.int64)
    shift = 2 * (MAX_ORDER - depth.astype(np.int64))
    return merge_ranges(ipix << shift, (ipix + 1) << shift)


def cone_ranges(ra: float, dec: float, radius: float, order: int) -> NDArray[np.int64]:
    """``hpx29`` ranges of the pixels (at ``order`` or coarser) that touch a cone.

    The cover is inclusive: every point within ``radius`` of the centre has
    its ``hpx29`` inside one of the ranges.

    Parameters
    ----------
    ra, dec : float
        Cone centre, degrees.
    radius : float
        Cone radius, degrees (0 < radius <= 180).
    order : int
        Deepest order of the cover; deeper means tighter and more ranges.

    Returns
    -------
    numpy.ndarray of int64, shape (n, 2)
        Disjoint half-open ``[lo, hi)`` ranges of ``hpx29``.
    """
    order = _check_order(order)
    if not 0 < radius <= 180:
        raise ValueError(f"cone radius must be within (0, 180] degrees, got {radius}")
    lon, lat = _lonlat(ra, dec)
    ipix, depth, _ = chp.cone_search(lon, lat, radius * u.deg, order)
    return _moc_to_ranges(ipix, depth)


def polygon_ranges(ra: ArrayLike, dec: ArrayLike, order: int) -> NDArray[np.int64]:
    """``hpx29`` ranges of the pixels (at ``order`` or coarser) that touch a polygon.

    Parameters
    ----------
    ra, dec : array_like
        Polygon vertices, degrees, in order (at least 3; the polygon is the
        smaller of the two regions its great-circle edges bound).
    order : int
        Deepest order of the cover.

    Returns
    -------
    numpy.ndarray of int64, shape (n, 2)
    """
    order = _check_order(order)
    lon, lat = _lonlat(ra, dec)
    if lon.size < 3:
        raise ValueError("a polygon needs at least 3 vertices")
    ipix, depth, _ = chp.polygon_search(lon, lat, order)
    return _moc_to_ranges(ipix, depth)


def pixel_boundary(ipix: int, order: int, step: int = 1) -> tuple[NDArray, NDArray]:
    """Vertices (ra, dec in degrees) of a pixel's boundary, counter-clockwise.

    ``step`` points per edge; with ``step=1`` the four corners. Edges of HEALPix
    pixels are not great circles, so polygons built from the corners alone
    are an approximation at low order; use a larger ``step`` there.
    """
    order = _check_order(order)
    lon, lat = chp.vertices(np.array([ipix], dtype=np.uint64), order, step=step)
    return lon.to_value(u.deg)[0], lat.to_value(u.deg)[0]


def boundary_spoly(ipix: int, order: int, step: int = 1) -> str:
    """A pixel's boundary as a pgsphere ``spoly`` literal (degrees).

    Returns
    -------
    str
        E.g. ``{(10.1d,20.2d),(...)}``, castable with ``::spoly``.
    """
    return spoly_literal(*pixel_boundary(ipix, order, step=step))


def spoly_literal(ra: ArrayLike, dec: ArrayLike) -> str:
    """pgsphere ``spoly`` literal from polygon vertices in degrees."""
    return "{" + ",".join(f"({float(a)!r}d,{float(d)!r}d)" for a, d in zip(ra, dec, strict=True)) + "}"
