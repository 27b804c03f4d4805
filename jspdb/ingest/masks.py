"""One mask convention for all surveys.

Every survey writes its own bits (Rubin names planes in ``MP_*`` header
keywords, Euclid and Roman use fixed flag bits). Adapters translate them to
these jspdb bits, so later tiers test one convention.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

__all__ = ["JSP_BITS", "UNUSABLE", "translate_bits"]

#: jspdb mask bits (value of each flag).
JSP_BITS: dict[str, int] = {
    "BAD": 1 << 0,        # dead/hot/bad column: never use
    "SAT": 1 << 1,        # saturated
    "CR": 1 << 2,         # cosmic ray
    "NO_DATA": 1 << 3,    # outside the illuminated area / no coverage
    "INTRP": 1 << 4,      # interpolated over
    "SUSPECT": 1 << 5,    # non-linear, warm, low QE: use with care
    "EDGE": 1 << 6,       # too close to the edge for reliable measurement
    "OTHER": 1 << 7,      # any other survey flag
}


#: Pixels no measurement should use (BAD, SAT, CR, NO_DATA).
UNUSABLE = JSP_BITS["BAD"] | JSP_BITS["SAT"] | JSP_BITS["CR"] | JSP_BITS["NO_DATA"]


def translate_bits(mask: NDArray, mapping: Mapping[int, str | None]) -> NDArray[np.int32]:
    """Translate a survey mask to jspdb bits.

    Parameters
    ----------
    mask
        Integer mask array in the survey's convention.
    mapping
        Survey bit *value* -> jspdb flag name (a key of `JSP_BITS`), or None
        for bits that are not defects (e.g. Rubin's ``DETECTED``). Survey bits
        not in the mapping set ``OTHER``.

    Returns
    -------
    numpy.ndarray of int32
    """
    mask = np.asarray(mask).astype(np.int64)
    out = np.zeros(mask.shape, dtype=np.int32)
    known = 0
    for value, name in mapping.items():
        known |= value
        if name is not None:
            out |= np.where(mask & value, JSP_BITS[name], 0).astype(np.int32)
    out |= np.where(mask & ~known, JSP_BITS["OTHER"], 0).astype(np.int32)
    return out
