"""Object identifiers that need no central sequence.

As Gaia's ``source_id``: the nested HEALPix pixel at order `ID_ORDER` in the
high bits and a per-pixel running number in the low `ID_RUN_BITS` bits, so a
tile's worker makes ids on its own and an id says where its object was born.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from jspdb.healpix import tile_index

__all__ = ["ID_ORDER", "ID_RUN_BITS", "make_ids", "id_pixel"]

#: HEALPix order of the pixel encoded in an id (Gaia uses 12).
ID_ORDER = 12
#: Bits for the running number: 2**35 objects per order-12 pixel is plenty.
ID_RUN_BITS = 35


def make_ids(ra: ArrayLike, dec: ArrayLike, start: ArrayLike | int = 0) -> NDArray[np.int64]:
    """Identifiers for objects at (ra, dec), degrees.

    The running number counts up from ``start`` within each order-12 pixel in
    input order, so the same input gives the same ids.
    """
    pix = tile_index(ra, dec, ID_ORDER)
    order = np.argsort(pix, kind="stable")
    sorted_pix = pix[order]
    first = np.searchsorted(sorted_pix, sorted_pix, side="left")
    run = np.empty_like(pix)
    run[order] = np.arange(pix.size) - first
    run = run + np.asarray(start, dtype=np.int64)
    if np.any(run >= (1 << ID_RUN_BITS)):
        raise ValueError("running number overflows the id")
    return (pix << ID_RUN_BITS) | run


def id_pixel(ids: ArrayLike, order: int = ID_ORDER) -> NDArray[np.int64]:
    """The nested HEALPix pixel (at ``order`` <= 12) an id was born in."""
    if order > ID_ORDER:
        raise ValueError(f"ids encode pixels at order {ID_ORDER} at most")
    return (np.asarray(ids, dtype=np.int64) >> ID_RUN_BITS) >> (2 * (ID_ORDER - order))
