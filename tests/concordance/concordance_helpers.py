"""Helpers of the concordance tests: the simulator's planes in the conventions the pipeline reads."""

from __future__ import annotations

import numpy as np

from jspdb.ingest.masks import JSP_BITS
from jspdb.sim.image import MASK_BITS

REF_COLUMNS = ("ra", "dec", "pmra", "pmdec", "ra_error", "dec_error", "pmra_error", "pmdec_error", "ref_epoch")


def jsp_mask(internal: np.ndarray) -> np.ndarray:
    """The simulator's internal mask planes in jspdb bits."""
    out = np.zeros(internal.shape, np.int32)
    for name in ("BAD", "SAT", "CR", "NO_DATA"):
        out[(internal & (1 << MASK_BITS[name])) != 0] |= JSP_BITS[name]
    return out


def reference_arrays(field) -> dict[str, np.ndarray]:
    """The field's reference catalog as the arrays `solve_astrometry` takes."""
    return {k: field.reference.column(k).to_numpy() for k in REF_COLUMNS}
