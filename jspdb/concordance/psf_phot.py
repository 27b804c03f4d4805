"""Forced PSF photometry of stars in crowded images (pure functions).

A circular aperture collects the light of every faint neighbour that the
segmentation does not mask, and a background mesh removes the *average*
of that light, not the light near each star: on the star-rich accuracy
fields faint ground-based stars came out 5-60 mmag off against bright ones
(`bench/probe_crowding.py`, docs/concordance.md). A fit of the PSF and a
local constant pedestal at the star's known position weights the core,
where the star dominates, and absorbs the smooth light of neighbours into
the pedestal.

A PSF fit is only as good as its PSF: a model 1 % too wide gives fluxes
about 1 % too high. The PSF of a real image (and of the simulator's) is
dilated across the field by a few per cent, so `fit_dilation_field` measures
the dilation on the image's bright stars and fits a quadratic across the
image; `forced_fluxes` then uses, for each star, the base profile dilated
to that value.

- `DilationGrid`: a PSF profile (GalSim) integrated over the pixel and
  sampled at a grid of dilations (`jspdb.concordance.psf_fit.PixelPSF`),
  interpolated quadratically in the dilation.
- `fit_dilations`: the best dilation of each (bright) star.
- `fit_dilation_field`: a polynomial of the dilation across the image.
- `forced_fluxes`: flux and pedestal of each star at its fixed position,
  by linear least squares, neighbours' pixels masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import galsim
import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import binary_dilation
from scipy.optimize import minimize_scalar

from jspdb.concordance.psf_fit import PixelPSF

__all__ = ["DilationField", "DilationGrid", "dilation_grid", "fit_dilation_field", "fit_dilations", "forced_fluxes",
           "other_sources"]

#: Fewest of the pixels within the fit radius that must be usable for a star to be fitted.
MIN_FRACTION = 0.6


@dataclass(frozen=True)
class DilationGrid:
    """Pixel-integrated PSFs of one profile at a grid of dilation factors.

    Attributes
    ----------
    factors
        Dilation factors, increasing and evenly spaced.
    psfs
        The `PixelPSF` of the profile dilated by each factor.
    """

    factors: NDArray
    psfs: tuple[PixelPSF, ...]

    @classmethod
    def from_profile(cls, profile: galsim.GSObject, pixel_scale_arcsec: float, half_width_px: int, *,
                     lo: float = 0.88, hi: float = 1.12, step: float = 0.03, oversample: int = 4) -> DilationGrid:
        """Sample ``profile`` (GalSim, arcsec) dilated by ``lo`` ... ``hi`` in steps of ``step``.

        Parameters
        ----------
        profile
            PSF profile without the pixel response, world units arcsec.
        pixel_scale_arcsec
            Detector pixel scale, arcsec per pixel.
        half_width_px
            Half width of the sampled region, detector pixels (at least the fit radius).
        lo, hi, step
            Range and spacing of the dilation factors. `stamp` interpolates
            quadratically between them: with 3 % steps the fitted flux errs by
            < 1e-4 (`tests/concordance/test_psf_phot.py`). Each factor costs one
            GalSim drawing (0.02 s for a Kolmogorov, ~0.3 s for Euclid's Airy).
        oversample
            Samples per detector pixel.
        """
        factors = np.round(np.arange(lo, hi + step / 2, step), 6)
        psfs = tuple(PixelPSF.from_profile(profile.dilate(float(f)), pixel_scale_arcsec, half_width_px=half_width_px,
                                           oversample=oversample) for f in factors)
        return cls(factors=factors, psfs=psfs)

    def stamp(self, dilation: float, dx: NDArray, dy: NDArray) -> NDArray:
        """Fraction of the flux in pixels at offsets ``dx``, ``dy`` (pixels) for a PSF dilated by ``dilation``.

        Quadratic (three-point Lagrange) interpolation between the sampled dilations.
        """
        f = self.factors
        if len(f) < 3:
            return self.psfs[int(np.argmin(np.abs(f - dilation)))].stamp(dx, dy)
        k = int(np.clip(np.argmin(np.abs(f - dilation)), 1, len(f) - 2))
        t = (float(np.clip(dilation, f[0], f[-1])) - f[k]) / (f[k + 1] - f[k])
        w = (0.5 * t * (t - 1.0), 1.0 - t * t, 0.5 * t * (t + 1.0))
        return sum(wi * self.psfs[k + i].stamp(dx, dy) for i, wi in zip((-1, 0, 1), w, strict=True))


@lru_cache(maxsize=32)
def dilation_grid(profile: galsim.GSObject, pixel_scale_arcsec: float, half_width_px: int) -> DilationGrid:
    """`DilationGrid.from_profile` with its defaults, cached per process: every image of a space band
    shares its instrument PSF, whose Airy pattern takes 1-6 s to sample."""
    return DilationGrid.from_profile(profile, pixel_scale_arcsec, half_width_px)


def other_sources(seg: NDArray, own: int, grow: int) -> NDArray:
    """Pixels of a segmentation cut-out that belong to sources other than segment ``own``, grown by ``grow`` pixels.

    The growth covers the faint edges of the neighbours but never takes pixels of
    the star's own segment (``own`` 0: the star has none).
    """
    other = (seg > 0) & (seg != own)
    if grow > 0 and other.any():
        other = binary_dilation(other, iterations=grow) & ~((seg == own) & (own > 0))
    return other


def _sky_variance(variance: NDArray, bad: NDArray) -> float:
    """Median variance of the usable pixels: the sky noise the unweighted fits assume."""
    ok = ~bad & (variance > 0)
    return float(np.median(variance[ok])) if ok.any() else 1.0


@dataclass(frozen=True)
class _Pixels:
    dx: NDArray
    dy: NDArray
    value: NDArray
    variance: NDArray


def _pixels(data: NDArray, variance: NDArray, bad: NDArray, seg: NDArray, own: int, x: float, y: float,
            radius: float, grow: int) -> _Pixels:
    """The usable pixels within ``radius`` of (x, y) that belong to no other source."""
    ny, nx = data.shape
    r = int(np.ceil(radius)) + grow + 1
    x0, x1 = max(int(round(x)) - r, 0), min(int(round(x)) + r + 1, nx)
    y0, y1 = max(int(round(y)) - r, 0), min(int(round(y)) + r + 1, ny)
    other = other_sources(seg[y0:y1, x0:x1], own, grow)
    gy, gx = np.mgrid[y0:y1, x0:x1]
    dx, dy = gx - x, gy - y
    v = variance[y0:y1, x0:x1]
    use = ~bad[y0:y1, x0:x1] & ~other & (dx * dx + dy * dy <= radius * radius) & np.isfinite(v) & (v > 0)
    return _Pixels(dx[use], dy[use], data[y0:y1, x0:x1][use], v[use])


def _linear_fit(p: _Pixels, model: NDArray, sky_var: float) -> tuple[float, float, float]:
    """Flux and pedestal by unweighted least squares; flux variance from the pixel variances; chi-square.

    Unweighted (the sky noise only) so that the star's own Poisson noise, which
    the variance plane carries, does not make the weights depend on the flux.
    """
    a = np.c_[model, np.ones_like(model)]
    ata = a.T @ a
    if len(model) < 4 or abs(np.linalg.det(ata)) < 1e-12 * max(float(np.trace(ata)), 1e-300) ** 2:
        return np.nan, np.nan, np.nan
    rows = np.linalg.solve(ata, a.T)  # (2, n): the linear estimator
    par = rows @ p.value
    chi2 = float(np.sum((p.value - a @ par) ** 2) / sky_var)
    return float(par[0]), float(np.sqrt(np.sum(rows[0] ** 2 * p.variance))), chi2


def forced_fluxes(data: NDArray, variance: NDArray, bad: NDArray, seg: NDArray, sid: NDArray, x: NDArray, y: NDArray,
                  grid: DilationGrid, dilation: NDArray | float, radius_px: float, *,
                  grow: int = 1, min_fraction: float = MIN_FRACTION) -> tuple[NDArray, NDArray, NDArray]:
    """Flux of each star from a fit of the PSF and a constant pedestal at its fixed position.

    Parameters
    ----------
    data
        Science plane with a background subtracted (image units per pixel).
    variance
        Variance plane, image units squared.
    bad
        Unusable pixels.
    seg, sid
        Segmentation map of the image's sources and each star's own segment
        (0: none); the pixels of other segments, grown by ``grow`` pixels,
        are left out of the fit.
    x, y
        Star positions, 0-based pixels.
    grid
        The image's PSF at a grid of dilations.
    dilation
        PSF dilation at each star (or one for all), e.g. from `DilationField`.
    radius_px
        Radius of the fitted pixels, pixels.
    min_fraction
        Fewest of the pixels within ``radius_px`` that must be usable.

    Returns
    -------
    (flux, flux_err, ok)
        Total flux of each star according to the PSF model (image units), its
        1-sigma error, and whether enough pixels were usable.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    d = np.broadcast_to(np.asarray(dilation, float), x.shape)
    sky_var = _sky_variance(variance, bad)
    flux, err, ok = np.full(len(x), np.nan), np.full(len(x), np.nan), np.zeros(len(x), bool)
    full = np.pi * radius_px**2
    for k in range(len(x)):
        p = _pixels(data, variance, bad, seg, int(sid[k]), x[k], y[k], radius_px, grow)
        if len(p.value) < min_fraction * full:
            continue
        flux[k], err[k], _ = _linear_fit(p, grid.stamp(d[k], p.dx, p.dy), sky_var)
        ok[k] = bool(np.isfinite(flux[k]) and np.isfinite(err[k]))
    return flux, err, ok


def fit_dilations(data: NDArray, variance: NDArray, bad: NDArray, seg: NDArray, sid: NDArray, x: NDArray, y: NDArray,
                  grid: DilationGrid, radius_px: float, *, grow: int = 1,
                  min_fraction: float = MIN_FRACTION) -> tuple[NDArray, NDArray]:
    """The PSF dilation that best fits each star (flux and pedestal free, position fixed).

    Parameters are those of `forced_fluxes`. Use bright stars: the dilation of
    a faint one is noisy.

    Returns
    -------
    (dilation, dilation_err)
        Best factor and its 1-sigma error from the chi-square curvature (sky
        noise); NaN where the fit failed or ran to the edge of the grid.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    sky_var = _sky_variance(variance, bad)
    lo, hi = float(grid.factors[0]), float(grid.factors[-1])
    d, de = np.full(len(x), np.nan), np.full(len(x), np.nan)
    for k in range(len(x)):
        p = _pixels(data, variance, bad, seg, int(sid[k]), x[k], y[k], radius_px, grow)
        if len(p.value) < min_fraction * np.pi * radius_px**2:
            continue

        def chi2(f: float, p: _Pixels = p) -> float:
            c = _linear_fit(p, grid.stamp(f, p.dx, p.dy), sky_var)[2]
            return c if np.isfinite(c) else 1e300

        r = minimize_scalar(chi2, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
        best = float(r.x)
        if not r.success or best < lo + 0.005 or best > hi - 0.005:
            continue
        h = 0.005
        curv = (chi2(best + h) - 2 * chi2(best) + chi2(best - h)) / h**2
        if curv > 0:
            d[k], de[k] = best, float(np.sqrt(2.0 / curv))
    return d, de


@dataclass(frozen=True)
class DilationField:
    """A polynomial of the PSF dilation across an image.

    Attributes
    ----------
    coeffs
        Coefficients of the monomials ``u**i * v**j`` listed in ``powers``,
        with ``u, v`` the pixel coordinates scaled to [-1, 1].
    powers
        ``(i, j)`` of each coefficient.
    shape
        Image shape ``(ny, nx)``.
    rms
        Weighted rms scatter of the kept stars about the polynomial (dilation units).
    n_stars
        Stars kept in the fit.
    """

    coeffs: NDArray
    powers: tuple[tuple[int, int], ...]
    shape: tuple[int, int]
    rms: float
    n_stars: int

    def _basis(self, x: NDArray, y: NDArray) -> NDArray:
        ny, nx = self.shape
        u = 2.0 * np.asarray(x, float) / max(nx - 1, 1) - 1.0
        v = 2.0 * np.asarray(y, float) / max(ny - 1, 1) - 1.0
        return np.stack([u**i * v**j for i, j in self.powers], axis=-1)

    def __call__(self, x: NDArray, y: NDArray) -> NDArray:
        """Dilation at pixel positions ``x``, ``y`` (0-based)."""
        return self._basis(x, y) @ self.coeffs


def fit_dilation_field(x: NDArray, y: NDArray, dilation: NDArray, dilation_err: NDArray, shape: tuple[int, int], *,
                       clip: float = 4.0) -> DilationField:
    """Weighted fit of the dilation across the image: quadratic, or lower with few stars.

    Degree 2 (6 terms) with at least 20 stars, 1 with at least 8, else a
    constant. An extra scatter is added in quadrature so that the reduced
    chi-square is 1 (the per-star errors hold the sky noise only), and stars
    beyond ``clip`` sigma are rejected, iteratively.

    Raises
    ------
    ValueError
        No star has a finite dilation.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    d, e = np.asarray(dilation, float), np.asarray(dilation_err, float)
    good = np.isfinite(d) & np.isfinite(e) & (e > 0)
    if not good.any():
        raise ValueError("no star with a measured PSF dilation")
    n = int(good.sum())
    degree = 2 if n >= 20 else 1 if n >= 8 else 0
    powers = tuple((i, j) for i in range(degree + 1) for j in range(degree + 1 - i))
    field = DilationField(np.zeros(len(powers)), powers, shape, 0.0, 0)
    a_all = field._basis(x, y)
    keep, extra = good.copy(), 0.0
    for _ in range(10):
        w = 1.0 / (e[keep] ** 2 + extra**2)
        a = a_all[keep]
        coeffs = np.linalg.lstsq(a * np.sqrt(w)[:, None], d[keep] * np.sqrt(w), rcond=None)[0]
        res = d - a_all @ coeffs
        dof = max(int(keep.sum()) - len(powers), 1)
        chi2 = float(np.sum(res[keep] ** 2 / (e[keep] ** 2 + extra**2)))
        if chi2 > dof:
            # the extra scatter that makes chi-square equal its degrees of freedom, by bisection
            lo, hi = extra, max(float(np.std(res[keep])), 1e-6) * 10
            for _ in range(50):
                mid = 0.5 * (lo + hi)
                if np.sum(res[keep] ** 2 / (e[keep] ** 2 + mid**2)) > dof:
                    lo = mid
                else:
                    hi = mid
            extra = hi
        new = good & (np.abs(res) < clip * np.sqrt(e**2 + extra**2))
        if np.array_equal(new, keep) or new.sum() < len(powers) + 1:
            break
        keep = new
    w = 1.0 / (e[keep] ** 2 + extra**2)
    rms = float(np.sqrt(np.sum(w * res[keep] ** 2) / np.sum(w)))
    return DilationField(coeffs, powers, (int(shape[0]), int(shape[1])), rms, int(keep.sum()))
