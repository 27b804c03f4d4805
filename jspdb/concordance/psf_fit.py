"""Star positions from a PSF model: pixel-integrated model fits for undersampled images.

Euclid NISP (0.3" pixels) and Roman's bluer filters (0.11" pixels) sample
their diffraction-limited PSF with fewer than two pixels per FWHM. A
Gaussian-like fit then carries a pixel-phase bias (the model's shape is
wrong, so where the light falls inside a pixel biases the centre). Fitting
the instrument's own PSF, integrated over the pixel, removes that bias.

`PixelPSF` holds an oversampled image of a PSF profile convolved with the
pixel response (so that each sample is the flux one pixel centred there
receives); `fit_positions` fits flux, centre and background of each star
with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import galsim
import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import map_coordinates, spline_filter
from scipy.optimize import least_squares

from jspdb.concordance.psf_ee import DRAW_GSPARAMS

__all__ = ["UNDERSAMPLED_FWHM_PX", "Cutout", "PixelPSF", "cutout", "fit_centre", "fit_positions", "pixel_psf"]


#: Measured FWHM (pixels) below which an image counts as undersampled: its stars are centroided by a
#: pixel-integrated PSF fit (not windowed centroids), and with a known instrument PSF its aperture
#: correction comes from the PSF model (not from the image's curve of growth).
UNDERSAMPLED_FWHM_PX = 2.05


@dataclass(frozen=True)
class PixelPSF:
    """A pixel-integrated PSF sampled on a finer grid, evaluated by cubic-spline interpolation.

    Attributes
    ----------
    coeffs
        Cubic-spline coefficients of the oversampled image (``scipy.ndimage.spline_filter``).
    oversample
        Samples per detector pixel along each axis.
    centre
        Array index (both axes) of the profile's centre in the oversampled image.
    """

    coeffs: NDArray
    oversample: int
    centre: float

    @classmethod
    def from_profile(cls, profile: galsim.GSObject, pixel_scale_arcsec: float, half_width_px: int = 8,
                     oversample: int = 6) -> PixelPSF:
        """Sample ``profile`` (GalSim, arcsec units) convolved with a square pixel of ``pixel_scale_arcsec``.

        Parameters
        ----------
        profile
            PSF surface brightness profile, world units arcsec (no pixel response).
        pixel_scale_arcsec
            Detector pixel scale, arcsec per pixel.
        half_width_px
            Half width of the sampled region, detector pixels.
        oversample
            Samples per detector pixel.
        """
        n = 2 * (half_width_px + 2) * oversample + 1  # odd: the profile centre is the central sample
        conv = galsim.Convolve(profile, galsim.Pixel(pixel_scale_arcsec), gsparams=DRAW_GSPARAMS)
        img = conv.drawImage(nx=n, ny=n, scale=pixel_scale_arcsec / oversample, method="no_pixel")
        # a sample times oversample^2 is the flux of a whole detector pixel centred at that point
        arr = img.array.astype(np.float64) * oversample**2
        return cls(coeffs=spline_filter(arr, order=3), oversample=oversample, centre=(n - 1) / 2.0)

    def stamp(self, dx: NDArray, dy: NDArray) -> NDArray:
        """Fraction of the flux in pixels at offsets ``dx``, ``dy`` (pixels) from the star's centre."""
        coords = np.array([self.centre + np.ravel(dy) * self.oversample, self.centre + np.ravel(dx) * self.oversample])
        out = map_coordinates(self.coeffs, coords, order=3, prefilter=False, mode="constant", cval=0.0)
        return out.reshape(np.shape(dx))


@lru_cache(maxsize=32)
def pixel_psf(profile: galsim.GSObject, pixel_scale_arcsec: float) -> PixelPSF:
    """`PixelPSF.from_profile` with its defaults, cached per process: every image of a space band shares its
    instrument PSF, and the astrometry and photometry steps of an image both need it."""
    return PixelPSF.from_profile(profile, pixel_scale_arcsec)


@dataclass(frozen=True)
class Cutout:
    """The pixels around one star: centre coordinates, values and least-squares weights.

    Attributes
    ----------
    x, y
        1-D pixel-centre coordinates of the columns and rows (0-based pixels).
    data
        Pixel values (2-D).
    weight
        ``1 / sigma`` per pixel; 0 for unusable pixels.
    """

    x: NDArray
    y: NDArray
    data: NDArray
    weight: NDArray


def cutout(data: NDArray, variance: NDArray, bad: NDArray, x: float, y: float, half_width_px: int) -> Cutout:
    """The (2 half_width + 1)^2 pixels around (x, y), clipped at the image edges."""
    ny, nx = data.shape
    ix, iy = int(round(x)), int(round(y))
    x0, x1 = max(ix - half_width_px, 0), min(ix + half_width_px + 1, nx)
    y0, y1 = max(iy - half_width_px, 0), min(iy + half_width_px + 1, ny)
    vv, bb = variance[y0:y1, x0:x1], bad[y0:y1, x0:x1]
    w = np.where(bb | ~(vv > 0), 0.0, 1.0 / np.sqrt(np.where(vv > 0, vv, 1.0)))
    return Cutout(np.arange(x0, x1, dtype=float), np.arange(y0, y1, dtype=float), data[y0:y1, x0:x1], w)


def fit_centre(resid, p0: NDArray, scale: NDArray, max_nfev: int = 200) -> tuple[float, float, float, float, bool]:
    """Levenberg-Marquardt fit of a star model whose parameters start ``(flux, x, y, ...)``.

    Returns the centre, its 1-sigma errors from the Jacobian (pixels), and
    whether the fit converged within 1 pixel of the start with a positive
    flux and a positive-definite covariance.
    """
    try:
        r = least_squares(resid, p0, x_scale=scale, method="lm", max_nfev=max_nfev)
        var = np.diag(np.linalg.inv(r.jac.T @ r.jac))
    except (np.linalg.LinAlgError, ValueError):
        return float(p0[1]), float(p0[2]), np.nan, np.nan, False
    ok = (bool(r.success) and abs(r.x[1] - p0[1]) < 1.0 and abs(r.x[2] - p0[2]) < 1.0 and r.x[0] > 0
          and var[1] > 0 and var[2] > 0)
    return float(r.x[1]), float(r.x[2]), float(np.sqrt(max(var[1], 0.0))), float(np.sqrt(max(var[2], 0.0))), ok


def _fit_one(data: NDArray, var: NDArray, bad: NDArray, x: float, y: float, hw: int,
             psf: PixelPSF) -> tuple[float, float, float, float, bool]:
    c = cutout(data, var, bad, x, y, hw)
    gx, gy = np.meshgrid(c.x, c.y)

    def resid(p: NDArray) -> NDArray:
        f, xc, yc, b = p
        return ((f * psf.stamp(gx - xc, gy - yc) + b - c.data) * c.weight).ravel()

    tot = float(np.sum(np.where(c.weight > 0, c.data, 0.0)))
    noise = float(np.median(1.0 / c.weight[c.weight > 0])) if (c.weight > 0).any() else 1.0
    return fit_centre(resid, np.array([max(tot, 1e-6), x, y, 0.0]),
                      np.array([max(abs(tot), 1e-6), 0.1, 0.1, max(noise, 1e-9)]))


def fit_positions(data: NDArray, variance: NDArray, bad: NDArray, x: NDArray, y: NDArray, psf: PixelPSF,
                  half_width_px: int = 4) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
    """Fit each star with the pixel-integrated PSF: flux, centre and a constant background.

    Parameters
    ----------
    data
        Background-subtracted science plane.
    variance
        Variance plane (science units squared); pixels with variance <= 0 get no weight.
    bad
        Boolean mask of unusable pixels (no weight).
    x, y
        Starting positions, 0-based pixels.
    psf
        The image's pixel-integrated PSF.
    half_width_px
        Half width of the fitted stamp, pixels.

    Returns
    -------
    x, y, x_err, y_err : ndarray
        Fitted centres and their 1-sigma errors from the fit's Jacobian, pixels.
    ok : ndarray of bool
        The fit converged within 1 pixel of the start with a positive flux.
    """
    res = [_fit_one(data, variance, bad, float(xi), float(yi), half_width_px, psf) for xi, yi in zip(x, y, strict=True)]
    if not res:
        e = np.empty(0)
        return e, e, e, e, np.empty(0, bool)
    xf, yf, ex, ey, ok = (np.array(c) for c in zip(*res, strict=True))
    return xf, yf, ex, ey, ok.astype(bool)
