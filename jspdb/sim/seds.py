"""Spectral energy distributions and synthetic photometry on the common wavelength grid.

Galaxies use the four Coleman, Wu & Weedman (1980) templates (E, Sbc, Scd, Im)
as extended by Bolzonella et al. (2000), shipped with GalSim. Stars are black
bodies. Band fluxes are photon-weighted means of f_nu through the band
(the AB convention), and every source also gets, per band, the photon-weighted
mean wavelength of its own spectrum through the band (``leff``, nm), which
drives the colour dependence of the PSF.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np

from jspdb.sim.bands import WAVELENGTH_GRID_NM, gaia_g_throughput, throughput

__all__ = ["GALAXY_TEMPLATES", "band_photometry", "blackbody_flambda", "galaxy_flambda"]

#: Galaxy template names, red to blue.
GALAXY_TEMPLATES = ("E", "Sbc", "Scd", "Im")


@cache
def _template(name: str) -> tuple[np.ndarray, np.ndarray]:
    import galsim

    path = os.path.join(galsim.meta_data.share_dir, "SEDs", f"CWW_{name}_ext.sed")
    data = np.loadtxt(path)
    return data[:, 0] / 10.0, data[:, 1]  # Angstrom -> nm, f_lambda (arbitrary units)


def galaxy_flambda(template: np.ndarray, redshift: np.ndarray) -> np.ndarray:
    """Observed-frame f_lambda of galaxies on `WAVELENGTH_GRID_NM` (arbitrary normalisation).

    Parameters
    ----------
    template
        Integer index into `GALAXY_TEMPLATES`, one per galaxy.
    redshift
        Redshift per galaxy.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, n_wavelength)``.
    """
    wl = WAVELENGTH_GRID_NM
    template = np.asarray(template, dtype=int)
    redshift = np.asarray(redshift, dtype=float)
    out = np.zeros((template.size, wl.size))
    for k, name in enumerate(GALAXY_TEMPLATES):
        sel = np.flatnonzero(template == k)
        if sel.size == 0:
            continue
        twl, tfl = _template(name)
        rest = wl[None, :] / (1.0 + redshift[sel, None])
        out[sel] = np.interp(rest, twl, tfl, left=0.0, right=tfl[-1]) / (1.0 + redshift[sel, None])
    return out


def blackbody_flambda(teff: np.ndarray) -> np.ndarray:
    """Black-body f_lambda of stars of effective temperature ``teff`` (K) on the grid (arbitrary units)."""
    wl_m = WAVELENGTH_GRID_NM[None, :] * 1e-9
    hc_k = 1.438776877e-2  # m K
    t = np.asarray(teff, dtype=float)[:, None]
    return 1e-30 / wl_m**5 / np.expm1(hc_k / (wl_m * t))


def _band_matrix(names: list[str]) -> np.ndarray:
    return np.array([throughput(n) for n in names])


def band_photometry(
    flambda: np.ndarray, band_names: list[str], with_gaia: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Relative band fluxes and effective wavelengths of spectra.

    Parameters
    ----------
    flambda
        ``(n, n_wavelength)`` f_lambda on `WAVELENGTH_GRID_NM`.
    band_names
        Bands to integrate.
    with_gaia
        Also return the relative flux through the approximate Gaia G passband.

    Returns
    -------
    fnu : numpy.ndarray
        ``(n, n_band)`` photon-weighted mean f_nu in each band, in the same
        arbitrary units for all bands (colours are meaningful, the scale is not).
    leff : numpy.ndarray
        ``(n, n_band)`` photon-weighted mean wavelength of the source through each band, nm.
    g : numpy.ndarray or None
        ``(n,)`` relative f_nu through Gaia G, same units as ``fnu``.
    """
    wl = WAVELENGTH_GRID_NM
    t = _band_matrix(band_names)  # (nb, nw)
    fnu = flambda * wl[None, :] ** 2  # arbitrary units
    # photon-weighted mean f_nu: int f_nu T dlam/lam / int T dlam/lam
    w = t / wl[None, :]
    fnu_band = fnu @ w.T / w.sum(axis=1)[None, :]
    photons = flambda * wl[None, :]  # photon rate density ~ f_lambda * lambda
    num = photons @ (t * wl[None, :]).T
    den = photons @ t.T
    with np.errstate(invalid="ignore", divide="ignore"):
        leff = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    g = None
    if with_gaia:
        tg = gaia_g_throughput()
        wg = tg / wl
        g = fnu @ wg / wg.sum()
    return fnu_band, leff, g
