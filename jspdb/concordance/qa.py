"""Quality-assurance plots of the concordance solutions (pure: arrays and a path in, a PNG out)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

__all__ = ["plot_astrometric_residuals", "plot_zeropoint_residuals"]


def plot_astrometric_residuals(
    x: NDArray, y: NDArray, dra_mas: NDArray, ddec_mas: NDArray, path: str | Path, *,
    shape: tuple[int, int] | None = None, used: NDArray | None = None, title: str = "",
    scale_mas: float | None = None,
) -> Path:
    """Residual vectors of the astrometric fit across the image.

    Parameters
    ----------
    x, y
        Star positions, 0-based pixels.
    dra_mas, ddec_mas
        Residuals (reference minus solution) in RA cos dec and Dec, mas.
    path
        Output PNG.
    shape
        Image shape (ny, nx) for the axes limits.
    used
        Stars kept by the fit (others drawn in grey).
    title
        Plot title.
    scale_mas
        Length of the key arrow, mas (default: the 90th percentile residual).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    x, y, dra, ddec = (np.asarray(v, float) for v in (x, y, dra_mas, ddec_mas))
    used = np.ones(len(x), bool) if used is None else np.asarray(used, bool)
    norm = np.hypot(dra, ddec)
    key = scale_mas or float(np.percentile(norm, 90)) if len(norm) else 1.0
    key = max(float(key), 0.1)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for sel, colour, label in ((used, "C0", "used"), (~used, "0.6", "rejected")):
        if sel.any():
            q = ax.quiver(x[sel], y[sel], -dra[sel], ddec[sel], color=colour, angles="xy", scale_units="width",
                          scale=10 * key, width=0.004, label=label)
    if len(x):
        ax.quiverkey(q, 0.8, 1.02, key, f"{key:.1f} mas", labelpos="E", coordinates="axes")
    if shape is not None:
        ax.set_xlim(0, shape[1])
        ax.set_ylim(0, shape[0])
    rms = float(np.sqrt(np.mean(np.r_[dra[used], ddec[used]] ** 2))) if used.any() else float("nan")
    ax.set_xlabel("x [pix]")
    ax.set_ylabel("y [pix]")
    ax.set_title(f"{title}  rms {rms:.1f} mas/coord, n={int(used.sum())}", fontsize=9)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    out = Path(path)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_zeropoint_residuals(
    colour: NDArray, residual_mag: NDArray, residual_err_mag: NDArray | None, path: str | Path, *,
    colour_term: float | None = None, colour_pivot: float = 0.0, used: NDArray | None = None,
    colour_name: str = "colour", title: str = "",
) -> Path:
    """Star-by-star zero-point residuals versus colour, with the fitted colour term.

    Parameters
    ----------
    colour
        Reference colour of each star, AB mag.
    residual_mag
        Star zero point minus the image zero point (before the colour term), mag.
    residual_err_mag
        1-sigma error of each residual, mag (None: no error bars).
    path
        Output PNG.
    colour_term, colour_pivot
        Fitted ``k`` of ``k (c - pivot)``, drawn as a line.
    used
        Stars kept by the fit (others drawn in grey).
    colour_name, title
        Labels.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    c, r = np.asarray(colour, float), np.asarray(residual_mag, float)
    e = None if residual_err_mag is None else np.asarray(residual_err_mag, float)
    used = np.ones(len(c), bool) if used is None else np.asarray(used, bool)
    fig, ax = plt.subplots(figsize=(6, 4))
    for sel, colour_, label in ((used, "C0", "used"), (~used, "0.6", "rejected")):
        if sel.any():
            ax.errorbar(c[sel], 1000 * r[sel], yerr=None if e is None else 1000 * e[sel], fmt="o", ms=4,
                        color=colour_, label=label, alpha=0.8)
    if colour_term is not None and np.isfinite(c).any():
        cc = np.linspace(np.nanmin(c), np.nanmax(c), 10)
        ax.plot(cc, 1000 * colour_term * (cc - colour_pivot), "C3-", label=f"k = {colour_term:+.3f}")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel(f"{colour_name} [mag]")
    ax.set_ylabel("zp(star) - zp [mmag]")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    out = Path(path)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
