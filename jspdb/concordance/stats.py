"""Statistics shared by the astrometric and photometric fits (pure functions)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["extra_variance"]


def extra_variance(r2: NDArray, s2: NDArray, dof: float) -> float:
    """Extra variance ``s0^2 >= 0`` per measurement such that ``sum(r2 / (s2 + s0^2)) = dof``.

    The scatter the reported errors do not explain (blends, undersampling,
    reference-catalog errors beyond their stated values), found by bisection;
    zero when the errors already explain the residuals.

    Parameters
    ----------
    r2
        Squared residuals, in the units of the measurement squared (mas^2 or mag^2).
    s2
        Their variances from the reported errors, same units.
    dof
        Degrees of freedom the chi-square should equal.

    Returns
    -------
    float
        ``s0^2``, same units as ``r2``.
    """
    if dof <= 0 or np.sum(r2 / s2) <= dof:
        return 0.0
    lo, hi = 0.0, float(np.max(r2)) + 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sum(r2 / (s2 + mid)) > dof else (lo, mid)
    return 0.5 * (lo + hi)
