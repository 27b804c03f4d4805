"""Astrometric solution of one image against the reference catalog (pure functions).

1. `detect_stars`: compact, isolated, unsaturated sources with sep (background,
   extraction), centroided either with windowed centroids (well-sampled
   images) or, on undersampled space images (where windowed centroids carry a
   pixel-phase bias of up to 0.06 px), with a fit of the image's
   pixel-integrated PSF model when it is known (`jspdb.concordance.psf_fit`),
   else of a pixel-integrated double Gaussian; each with its own propagated
   centroid uncertainty.
2. `reference_at_epoch`: reference positions carried to the image epoch with
   their proper motions; `reference_errors_at_epoch` their uncertainties
   (position error at the reference epoch and proper-motion error times the
   time baseline, in quadrature).
3. `match_to_reference`: nearest reference star within a radius, one-to-one.
4. `fit_wcs`: a correction of the delivered WCS in the tangent plane of its
   reference point: shift + rotation + scale ("similarity", few stars), full
   linear ("affine") or cubic polynomial ("poly3", SIP, many stars), chosen
   from the star count. Weighted least squares with the centroid and reference
   errors, a weak Gaussian prior on the non-shift linear terms, an extra
   per-star scatter fitted so that the residual chi-square matches its
   degrees of freedom, and clipping. The fit covariance propagated to a grid
   of pixel positions gives ``sigma_mas``, the predicted rms sky error of the
   solution over the image.
5. `solve_astrometry`: all of the above for one image (match with the
   delivered WCS, fit, re-match with the fitted WCS, fit again).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import astropy.units as u
import galsim
import numpy as np
import sep
from astropy.coordinates import SkyCoord
from astropy.time import Time
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import fit_wcs_from_points
from erfa import ErfaWarning
from numpy.typing import NDArray
from scipy.ndimage import binary_dilation
from scipy.special import erf

from jspdb.concordance.psf_fit import (
    UNDERSAMPLED_FWHM_PX,
    PixelPSF,
    cutout,
    fit_centre,
    fit_positions,
    pixel_psf,
)
from jspdb.concordance.stats import extra_variance
from jspdb.ingest.masks import UNUSABLE as _BAD_BITS

__all__ = [
    "AstrometricFit",
    "AstrometricSolution",
    "MIN_STARS",
    "detect_stars",
    "fit_wcs",
    "match_to_reference",
    "predicted_sky_error_mas",
    "reference_at_epoch",
    "reference_errors_at_epoch",
    "shift_wcs",
    "sky_error_mas",
    "solve_astrometry",
]

#: Fewest matched stars an astrometric fit accepts.
MIN_STARS = 3
_DET_KEYS = ("x", "y", "flux", "flux_err", "snr", "peak", "x_err", "y_err")


# --------------------------------------------------------------------------- detection and centroids


def _pixint(c: NDArray, x0: float, s: float) -> NDArray:
    """Integral over the unit pixels centred on ``c`` of a unit Gaussian at ``x0`` of width ``s``."""
    k = 1.0 / (np.sqrt(2.0) * s)
    return 0.5 * (erf((c - x0 + 0.5) * k) - erf((c - x0 - 0.5) * k))


def _psf_fit_one(data: NDArray, var: NDArray, bad: NDArray, x: float, y: float, hw: int,
                 s0: float) -> tuple[float, float, float, float, bool]:
    """Pixel-integrated double-Gaussian fit of one star: (x, y, sigma_x, sigma_y, ok), pixels."""
    c = cutout(data, var, bad, x, y, hw)
    ratio = 3.0

    def resid(p: NDArray) -> NDArray:
        f, xc, yc, s, a, b = p
        fa = 1.0 / (1.0 + np.exp(-a))
        s = abs(s) + 0.05
        core = np.outer(_pixint(c.y, yc, s), _pixint(c.x, xc, s))
        halo = np.outer(_pixint(c.y, yc, ratio * s), _pixint(c.x, xc, ratio * s))
        return ((f * ((1 - fa) * core + fa * halo) + b - c.data) * c.weight).ravel()

    tot = float(np.sum(np.where(c.weight > 0, c.data, 0.0)))
    noise = float(np.median(1.0 / c.weight[c.weight > 0])) if (c.weight > 0).any() else 1.0
    return fit_centre(resid, np.array([max(tot, 1e-6), x, y, s0, -1.5, 0.0]),
                      np.array([max(abs(tot), 1e-6), 0.1, 0.1, 0.1, 1.0, max(noise, 1e-9)]), max_nfev=400)


def _winpos_errors(data: NDArray, var: NDArray, bad: NDArray, x: NDArray, y: NDArray,
                   sig: float) -> tuple[NDArray, NDArray]:
    """1-sigma errors (pixels) of converged windowed centroids with a Gaussian window of width ``sig``.

    The centroid solves ``F(xc) = sum w (x - xc) I = 0``; its error is the
    noise of ``F`` divided by ``|dF/dxc| = |sum w I ((x - xc)^2 / sig^2 - 1)|``.
    """
    ny, nx = data.shape
    hw = int(np.ceil(4 * sig))
    ex, ey = np.full(len(x), np.nan), np.full(len(x), np.nan)
    for k in range(len(x)):
        ix, iy = int(round(x[k])), int(round(y[k]))
        x0, x1, y0, y1 = max(ix - hw, 0), min(ix + hw + 1, nx), max(iy - hw, 0), min(iy + hw + 1, ny)
        gx, gy = np.meshgrid(np.arange(x0, x1) - x[k], np.arange(y0, y1) - y[k])
        r2 = gx**2 + gy**2
        w = np.where((r2 < (4 * sig) ** 2) & ~bad[y0:y1, x0:x1], np.exp(-0.5 * r2 / sig**2), 0.0)
        im, vv = data[y0:y1, x0:x1], np.clip(var[y0:y1, x0:x1], 0, None)
        for g, out in ((gx, ex), (gy, ey)):
            den = abs(np.sum(w * im * (g**2 / sig**2 - 1.0)))
            out[k] = np.sqrt(np.sum((w * g) ** 2 * vv)) / max(den, 1e-30)
    return ex, ey


def detect_stars(
    science: NDArray, variance: NDArray, mask: NDArray, *, nsigma: float = 10.0, max_flux_frac: float = 0.8,
    saturation: float | None = None, isolation_fwhm: float = 2.5, centroid: str = "auto",
    psf: PixelPSF | None = None,
) -> dict[str, NDArray]:
    """Bright, clean, isolated point-like sources for astrometry and photometry.

    Parameters
    ----------
    science, variance, mask
        Planes in jspdb conventions (variance in science units squared; mask
        in `jspdb.ingest.masks.JSP_BITS`).
    nsigma
        Detection threshold in units of the local noise.
    max_flux_frac
        Sources whose peak exceeds this fraction of ``saturation`` are dropped.
    saturation
        Saturation level in science units (None: no cut).
    isolation_fwhm
        Sources with another detection (at 3 sigma) closer than this many
        FWHM are dropped as blended; so are sources sep deblended or truncated.
    centroid
        ``"window"`` (sep windowed centroids), ``"model"`` (fit of ``psf``,
        the image's pixel-integrated PSF model), ``"psf"`` (pixel-integrated
        double-Gaussian fit) or ``"auto"``: when the measured FWHM is below
        `UNDERSAMPLED_FWHM_PX`, ``"model"`` if ``psf`` is given, else
        ``"psf"``; ``"window"`` otherwise.
    psf
        The image's PSF model (`jspdb.concordance.psf_fit.PixelPSF`), if known.

    Returns
    -------
    dict of arrays
        ``x``, ``y`` (0-based pixels), ``x_err``, ``y_err`` (1-sigma centroid
        errors, pixels), ``flux``, ``flux_err`` (science units, aperture of
        3 FWHM radius), ``snr``, ``peak``; and the scalars ``fwhm_px`` (median
        FWHM of the stars, pixels) and ``centroid`` (method used) as 0-d arrays.
    """
    if centroid == "model" and psf is None:
        raise ValueError("centroid='model' needs the image's PSF model (psf=)")
    sci = np.ascontiguousarray(science, dtype=np.float64)
    bad = (np.asarray(mask) & _BAD_BITS) != 0
    var = np.asarray(variance, dtype=np.float64)
    good_var = np.isfinite(var) & (var > 0)
    if not good_var.any():
        var = np.full_like(sci, np.nanvar(sci))
        good_var = np.isfinite(var)
    var = np.where(good_var, var, np.nanmedian(var[good_var]))
    err = np.sqrt(var)
    bkg = sep.Background(sci, mask=bad)
    data = np.ascontiguousarray(sci - bkg.back())
    empty = {k: np.empty(0) for k in _DET_KEYS}
    empty.update(fwhm_px=np.array(np.nan), centroid=np.array(centroid))
    objs = sep.extract(data, nsigma, err=err, mask=bad, minarea=4, deblend_cont=0.005)
    if len(objs) == 0:
        return empty
    # FWHM from the half-light radius of the compact, bright sources (Gaussian: FWHM = 2 r_50)
    r50, _ = sep.flux_radius(data, objs["x"], objs["y"], np.full(len(objs), 10.0), 0.5, mask=bad, subpix=5)
    bright = (objs["flag"] == 0) & np.isfinite(r50) & (r50 > 0)
    fwhm = float(2.0 * np.nanpercentile(r50[bright], 30)) if bright.sum() >= 3 else 2.5
    fwhm = float(np.clip(fwhm, 1.0, 20.0))
    if centroid == "auto":
        method = ("model" if psf is not None else "psf") if fwhm < UNDERSAMPLED_FWHM_PX else "window"
    else:
        method = centroid

    # isolation: no 3-sigma detection within 1.2 FWHM (and 3 px), none brighter than 5 % of the
    # star within isolation_fwhm * FWHM
    deep = sep.extract(data, 3.0, err=err, mask=bad, minarea=3, deblend_cont=0.005)
    d = np.hypot(objs["x"][:, None] - deep["x"][None], objs["y"][:, None] - deep["y"][None])
    d[d < 0.75] = np.inf  # the source itself
    ratio = deep["flux"][None, :] / np.maximum(objs["flux"][:, None], 1e-30)
    crowded = (d < max(1.2 * fwhm, 3.0)) | ((d < max(isolation_fwhm * fwhm, 4.0)) & (ratio > 0.05))
    isolated = ~crowded.any(axis=1)
    # compact: not much larger than the stellar locus (galaxies)
    compact = np.isfinite(r50) & (r50 < 0.5 * fwhm * 1.5 + 0.3)
    ap = 1.5 * fwhm + 1.0
    flux, flux_err, aflag = sep.sum_circle(data, objs["x"], objs["y"], ap, err=err, mask=bad)
    keep = ((objs["flag"] & (sep.OBJ_TRUNC | sep.OBJ_SINGU)) == 0) & (flux > 0)
    keep &= isolated & compact & ((aflag & sep.APER_HASMASKED) == 0)
    if saturation is not None:
        keep &= objs["peak"] + bkg.globalback < max_flux_frac * saturation
    ny, nx = sci.shape
    edge = 2.0 * fwhm + 2
    keep &= (objs["x"] > edge) & (objs["x"] < nx - 1 - edge) & (objs["y"] > edge) & (objs["y"] < ny - 1 - edge)
    near_bad = binary_dilation(bad, iterations=max(int(np.ceil(fwhm)), 2))
    ix, iy = np.clip(np.round(objs["x"]).astype(int), 0, nx - 1), np.clip(np.round(objs["y"]).astype(int), 0, ny - 1)
    keep &= ~near_bad[iy, ix]
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return empty
    sig = fwhm / 2.3548
    if method == "window":
        xw, yw, wflag = sep.winpos(data, objs["x"][idx], objs["y"][idx], sig, mask=bad)
        ex, ey = _winpos_errors(data, var, bad, xw, yw, sig)
        ok = (wflag == 0) & (np.hypot(xw - objs["x"][idx], yw - objs["y"][idx]) < 1.0)
    elif method == "model":
        assert psf is not None
        xw, yw, ex, ey, ok = fit_positions(data, var, bad, objs["x"][idx], objs["y"][idx], psf,
                                           half_width_px=int(np.ceil(max(3.0, 2.0 * fwhm))))
    else:
        hw = int(np.ceil(max(3.0, 2.0 * fwhm)))
        res = [_psf_fit_one(data, var, bad, objs["x"][k], objs["y"][k], hw, max(0.6 * sig, 0.3)) for k in idx]
        xw, yw, ex, ey, ok = (np.array(c) for c in zip(*res, strict=True))
        ok = ok.astype(bool)
    ok &= np.isfinite(ex) & np.isfinite(ey) & (ex > 0) & (ey > 0)
    out = {"x": xw[ok], "y": yw[ok], "x_err": ex[ok], "y_err": ey[ok], "flux": flux[idx][ok],
           "flux_err": flux_err[idx][ok], "peak": objs["peak"][idx][ok]}
    out["snr"] = out["flux"] / np.maximum(out["flux_err"], 1e-30)
    out["fwhm_px"] = np.array(fwhm)
    out["centroid"] = np.array(method)
    return out


# --------------------------------------------------------------------------- reference catalog


def reference_at_epoch(
    ra: NDArray, dec: NDArray, pmra: NDArray, pmdec: NDArray, ref_epoch: float, mjd: float
) -> tuple[NDArray, NDArray]:
    """Reference positions (deg) carried from ``ref_epoch`` (Julian yr) to ``mjd`` with proper motion.

    Missing proper motions (NaN) count as zero. Parallax is not applied
    (sub-mas for the faint reference stars that fall on survey images).
    """
    pmra = np.nan_to_num(np.asarray(pmra, dtype=float))
    pmdec = np.nan_to_num(np.asarray(pmdec, dtype=float))
    c = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, pm_ra_cosdec=pmra * u.mas / u.yr, pm_dec=pmdec * u.mas / u.yr,
                 obstime=Time(ref_epoch, format="jyear", scale="tcb"), frame="icrs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ErfaWarning)  # future epochs of planned surveys
        moved = c.apply_space_motion(new_obstime=Time(mjd, format="mjd", scale="tcb"))
    return moved.ra.deg, moved.dec.deg


def reference_errors_at_epoch(
    ra_err: NDArray, dec_err: NDArray, pmra_err: NDArray | None, pmdec_err: NDArray | None, ref_epoch: float,
    mjd: float, *, missing_pm_err: float = 5.0,
) -> tuple[NDArray, NDArray]:
    """1-sigma reference position errors at ``mjd``, mas (RA error times cos dec).

    Parameters
    ----------
    ra_err, dec_err
        Position errors at ``ref_epoch``, mas.
    pmra_err, pmdec_err
        Proper-motion errors, mas/yr (None or NaN: ``missing_pm_err``, a
        typical proper motion of a field star, since the motion is unknown).
    ref_epoch
        Reference epoch, Julian yr.
    mjd
        Epoch of the image, MJD.
    """
    dt = abs(2000.0 + (mjd - 51544.5) / 365.25 - ref_epoch)
    n = len(np.atleast_1d(ra_err))

    def pm(e: NDArray | None) -> NDArray:
        if e is None:
            return np.full(n, missing_pm_err)
        e = np.asarray(e, dtype=float)
        return np.where(np.isfinite(e), e, missing_pm_err)

    return (np.hypot(np.asarray(ra_err, float), pm(pmra_err) * dt),
            np.hypot(np.asarray(dec_err, float), pm(pmdec_err) * dt))


def match_to_reference(
    ra: NDArray, dec: NDArray, ref_ra: NDArray, ref_dec: NDArray, radius_arcsec: float
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray]:
    """One-to-one nearest-neighbour matches within ``radius_arcsec``.

    Returns
    -------
    (i_src, i_ref, sep_arcsec)
    """
    if len(ra) == 0 or len(ref_ra) == 0:
        return np.empty(0, int), np.empty(0, int), np.empty(0)
    src = SkyCoord(ra * u.deg, dec * u.deg)
    ref = SkyCoord(ref_ra * u.deg, ref_dec * u.deg)
    idx, d2d, _ = src.match_to_catalog_sky(ref)
    sep_arcsec = d2d.arcsec
    ok = sep_arcsec < radius_arcsec
    i_src, i_ref, s = np.flatnonzero(ok), idx[ok], sep_arcsec[ok]
    # one-to-one: a reference star claimed twice keeps its nearest source
    order = np.argsort(s)
    _, first = np.unique(i_ref[order], return_index=True)
    keep = order[first]
    return i_src[keep], i_ref[keep], s[keep]


# --------------------------------------------------------------------------- the fit


@dataclass
class AstrometricFit:
    """Result of `fit_wcs`.

    Attributes
    ----------
    wcs
        The corrected WCS (TAN, with SIP for ``poly3``).
    model
        ``"similarity"``, ``"affine"`` or ``"poly3"``.
    n_stars, n_rejected
        Stars kept and clipped.
    rms_mas
        Residual rms of the kept stars per coordinate, mas.
    sigma_mas
        Predicted rms sky error of the solution over the image (root mean
        square over a pixel grid of the 2-D position error, from the fit
        covariance), mas.
    residuals_mas
        (n, 2): (dRA cos dec, dDec) of the kept stars, reference minus fit, mas.
    used
        Boolean mask of the input matches kept.
    extra_scatter_mas
        Per-coordinate scatter added in quadrature to the stars' errors so
        that the residual chi-square matches its degrees of freedom, mas.
    chi2_dof
        Reduced chi-square with the stars' own errors only.
    covariance
        Covariance of the model parameters (tangent-plane mas; see `param_names`).
    """

    wcs: WCS
    model: str
    n_stars: int
    n_rejected: int
    rms_mas: float
    sigma_mas: float
    residuals_mas: NDArray
    used: NDArray
    extra_scatter_mas: float = 0.0
    chi2_dof: float = float("nan")
    covariance: NDArray = field(default_factory=lambda: np.zeros((0, 0)))
    param_names: tuple[str, ...] = ()
    _grid_design: NDArray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)


def _tangent(ra: NDArray, dec: NDArray, ra0: float, dec0: float) -> tuple[NDArray, NDArray]:
    """Gnomonic projection about (ra0, dec0), mas."""
    a, d, a0, d0 = (np.radians(np.asarray(v, float)) for v in (ra, dec, ra0, dec0))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    k = np.degrees(1.0) * 3.6e6
    return xi * k, eta * k


def _untangent(xi: NDArray, eta: NDArray, ra0: float, dec0: float) -> tuple[NDArray, NDArray]:
    """Inverse gnomonic projection (mas in, deg out)."""
    k = np.degrees(1.0) * 3.6e6
    x, y = np.asarray(xi) / k, np.asarray(eta) / k
    a0, d0 = np.radians(ra0), np.radians(dec0)
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(np.cos(c) * np.sin(d0) + np.where(rho > 0, y * np.sin(c) * np.cos(d0) / rho, 0.0))
    ra = a0 + np.arctan2(x * np.sin(c), rho * np.cos(d0) * np.cos(c) - y * np.sin(d0) * np.sin(c))
    return np.degrees(ra) % 360.0, np.degrees(dec)


_MODELS = ("similarity", "affine", "poly3")


def _design(model: str, p: NDArray, q: NDArray) -> tuple[NDArray, NDArray, tuple[str, ...], NDArray]:
    """Design matrices of the tangent-plane correction (d_xi, d_eta) at normalised coordinates (p, q).

    Returns (A_xi, A_eta, names, is_linear_term) with one column per parameter.
    """
    n = len(p)
    one, zero = np.ones(n), np.zeros(n)
    if model == "similarity":  # d_xi = a + s p - r q ; d_eta = b + r p + s q
        ax = np.column_stack([one, zero, p, -q])
        ae = np.column_stack([zero, one, q, p])
        return ax, ae, ("xi0", "eta0", "scale", "rot"), np.array([False, False, True, True])
    terms = [(1, 0), (0, 1)] + ([(2, 0), (1, 1), (0, 2), (3, 0), (2, 1), (1, 2), (0, 3)] if model == "poly3" else [])
    cols = [p**i * q**j for i, j in terms]
    k = len(terms)
    ax = np.column_stack([one, zero, *cols, *([zero] * k)])
    ae = np.column_stack([zero, one, *([zero] * k), *cols])
    names = ("xi0", "eta0", *(f"xi_{i}{j}" for i, j in terms), *(f"eta_{i}{j}" for i, j in terms))
    lin = np.array([False, False, *[i + j == 1 for i, j in terms], *[i + j == 1 for i, j in terms]])
    return ax, ae, names, lin


def _choose_model(n: int, sip_min_stars: int, affine_min_stars: int) -> str:
    if n >= sip_min_stars:
        return "poly3"
    if n >= affine_min_stars:
        return "affine"
    return "similarity"


def fit_wcs(
    x: NDArray, y: NDArray, ra: NDArray, dec: NDArray, *, shape: tuple[int, int], initial: WCS,
    xy_err: NDArray | None = None, radec_err_mas: NDArray | None = None, model: str = "auto",
    sip_min_stars: int = 150, affine_min_stars: int = 12, sip_degree: int = 3, linear_prior: float = 3e-4,
    clip_sigma: float = 4.0, max_iter: int = 10, min_stars: int = MIN_STARS,
) -> AstrometricFit:
    """Fit a correction of the image's WCS to matched reference stars.

    Parameters
    ----------
    x, y
        Source centroids, 0-based pixels.
    ra, dec
        Reference positions at the image epoch, deg.
    shape
        Image shape (ny, nx).
    initial
        The delivered WCS; the correction is a polynomial in its tangent plane
        (same tangent point).
    xy_err
        (n, 2) or (n,) 1-sigma centroid errors, pixels (None: 0.05 px).
    radec_err_mas
        (n, 2) or (n,) 1-sigma reference errors at the image epoch, mas
        (None: 0).
    model
        ``"similarity"`` (shift, rotation, scale: 4 parameters), ``"affine"``
        (6), ``"poly3"`` (cubic, 20; written as TAN-SIP) or ``"auto"``: poly3
        from ``sip_min_stars`` stars, affine from ``affine_min_stars``,
        similarity below.
    sip_degree
        Kept for compatibility: the polynomial model is cubic.
    linear_prior
        1-sigma Gaussian prior on the dimensionless rotation, scale and shear
        terms of the correction (the delivered WCS is good to ~1e-4).
    clip_sigma
        Stars whose 2-D normalised residual exceeds this (in the chi-square
        sense with 2 degrees of freedom at the same tail probability) are
        dropped; re-admitted if they fall back below it.
    max_iter
        Iterations of fit, extra-scatter estimate and clipping.
    min_stars
        Fewest stars accepted (ValueError "too few matched stars" below).

    Returns
    -------
    AstrometricFit
    """
    del sip_degree
    x, y, ra, dec = (np.asarray(v, dtype=float) for v in (x, y, ra, dec))
    n = len(x)
    if n < min_stars:
        raise ValueError(f"too few matched stars for an astrometric fit: {n} (need at least {min_stars})")
    if model == "auto":
        model = _choose_model(n, sip_min_stars, affine_min_stars)
    if model not in _MODELS:
        raise ValueError(f"unknown astrometric model {model!r}; known: {_MODELS}")
    ny, nx = shape
    ra0, dec0 = (float(v) for v in initial.wcs.crval)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wra, wdec = initial.all_pix2world(x, y, 0)
        jac = initial.pixel_scale_matrix * 3.6e6  # mas per pixel (RA axis: degrees of RA, times cos dec ~ ok)
    xi_w, eta_w = _tangent(wra, wdec, ra0, dec0)
    xi_r, eta_r = _tangent(ra, dec, ra0, dec0)
    # normalisation: the written tangent coordinates of the image centre and half-size
    cra, cdec = initial.all_pix2world([(nx - 1) / 2.0], [(ny - 1) / 2.0], 0)
    xi_c, eta_c = (float(v[0]) for v in _tangent(cra, cdec, ra0, dec0))
    pix_mas = float(np.sqrt(abs(np.linalg.det(jac))))
    half = 0.5 * max(nx, ny) * pix_mas
    p, q = (xi_w - xi_c) / half, (eta_w - eta_c) / half
    ax, ae, names, lin = _design(model, p, q)
    # per-star variances per coordinate, mas^2
    if xy_err is None:
        xy_err = np.full((n, 2), 0.05)
    xy_err = np.broadcast_to(np.asarray(xy_err, float).reshape(n, -1), (n, 2))
    cen_var = (xy_err * pix_mas) ** 2
    ref_var = np.zeros((n, 2)) if radec_err_mas is None else \
        np.broadcast_to(np.asarray(radec_err_mas, float).reshape(n, -1), (n, 2)) ** 2
    s2 = np.maximum(cen_var + ref_var, 1e-6)
    bx, be = xi_r - xi_w, eta_r - eta_w
    prior = np.where(lin, 1.0 / (linear_prior * half) ** 2, 0.0)
    use = np.ones(n, dtype=bool)
    thr = -2.0 * np.log(_gauss_tail(clip_sigma))  # chi2(2 dof) at the same tail probability
    # robust start: drop gross outliers against the median shift
    r0 = np.hypot(bx - np.median(bx), be - np.median(be))
    mad = 1.4826 * np.median(np.abs(r0 - np.median(r0))) + np.median(r0)
    use &= r0 < max(5.0 * mad, 3.0 * float(np.sqrt(np.median(s2.sum(1)))))
    if use.sum() < min_stars:
        use[:] = True
    s0 = 0.0
    for _ in range(max_iter):
        theta, cov, s0 = _solve(ax, ae, bx, be, s2, prior, use)
        rx, re = bx - ax @ theta, be - ae @ theta
        z2 = rx**2 / (s2[:, 0] + s0) + re**2 / (s2[:, 1] + s0)
        new = z2 < thr
        if new.sum() < min_stars:
            break
        if np.array_equal(new, use):
            break
        use = new
    k = int(use.sum())
    if k < min_stars:
        raise ValueError(f"too few matched stars for an astrometric fit after clipping: {k} "
                         f"(need at least {min_stars})")
    theta, cov, s0 = _solve(ax, ae, bx, be, s2, prior, use)
    rx, re = bx - ax @ theta, be - ae @ theta
    dof = max(2 * k - len(theta), 1)
    chi2 = float(np.sum(rx[use] ** 2 / s2[use, 0] + re[use] ** 2 / s2[use, 1]) / dof)
    # the corrected WCS, from a noise-free grid of the model
    wcs = _build_wcs(initial, model, theta, (xi_c, eta_c), half, ra0, dec0, shape)
    gd = _grid_design(initial, model, (xi_c, eta_c), half, ra0, dec0, shape)
    sigma = predicted_sky_error_mas(gd, cov)
    rms = float(np.sqrt(np.mean(np.r_[rx[use], re[use]] ** 2)))
    return AstrometricFit(wcs=wcs, model=model, n_stars=k, n_rejected=n - k, rms_mas=rms, sigma_mas=sigma,
                          residuals_mas=np.column_stack([rx[use], re[use]]), used=use,
                          extra_scatter_mas=float(np.sqrt(s0)), chi2_dof=chi2, covariance=cov, param_names=names,
                          _grid_design=gd)


def _gauss_tail(nsig: float) -> float:
    """Two-sided tail probability of a Gaussian beyond ``nsig``."""
    from scipy.stats import norm

    return float(2.0 * norm.sf(nsig))


def _solve(ax: NDArray, ae: NDArray, bx: NDArray, be: NDArray, s2: NDArray, prior: NDArray,
           use: NDArray) -> tuple[NDArray, NDArray, float]:
    """Weighted least squares with a diagonal prior and a fitted extra scatter: (theta, cov, s0^2)."""
    s0 = 0.0
    npar = ax.shape[1]
    for _ in range(20):
        wx, we = 1.0 / (s2[use, 0] + s0), 1.0 / (s2[use, 1] + s0)
        nmat = (ax[use].T * wx) @ ax[use] + (ae[use].T * we) @ ae[use] + np.diag(prior)
        rhs = (ax[use].T * wx) @ bx[use] + (ae[use].T * we) @ be[use]
        cov = np.linalg.inv(nmat)
        theta = cov @ rhs
        rx, re = bx[use] - ax[use] @ theta, be[use] - ae[use] @ theta
        # effective number of parameters (the prior removes some freedom)
        neff = float(np.trace(cov @ (nmat - np.diag(prior))))
        dof = 2 * int(use.sum()) - neff
        new = extra_variance(np.r_[rx, re] ** 2, np.r_[s2[use, 0], s2[use, 1]], dof)
        if abs(new - s0) <= 1e-3 * max(s0, 1e-6):
            s0 = new
            break
        s0 = new
    del npar
    wx, we = 1.0 / (s2[use, 0] + s0), 1.0 / (s2[use, 1] + s0)
    nmat = (ax[use].T * wx) @ ax[use] + (ae[use].T * we) @ ae[use] + np.diag(prior)
    cov = np.linalg.inv(nmat)
    theta = cov @ ((ax[use].T * wx) @ bx[use] + (ae[use].T * we) @ be[use])
    return theta, cov, s0


def _grid(shape: tuple[int, int], n: int = 15) -> tuple[NDArray, NDArray]:
    ny, nx = shape
    gx, gy = np.meshgrid(np.linspace(0, nx - 1, n), np.linspace(0, ny - 1, n))
    return gx.ravel(), gy.ravel()


def _grid_design(initial: WCS, model: str, centre: tuple[float, float], half: float, ra0: float, dec0: float,
                 shape: tuple[int, int]) -> NDArray:
    """Stacked (xi rows, eta rows) design matrix of the model over a pixel grid."""
    gx, gy = _grid(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        gra, gdec = initial.all_pix2world(gx, gy, 0)
    xi, eta = _tangent(gra, gdec, ra0, dec0)
    ax, ae, _, _ = _design(model, (xi - centre[0]) / half, (eta - centre[1]) / half)
    return np.vstack([ax, ae])


def predicted_sky_error_mas(grid_design: NDArray, cov: NDArray) -> float:
    """Root mean square over a grid of the predicted 2-D position error, mas.

    ``grid_design`` stacks the design rows of the xi and eta corrections at the
    grid points (first half xi, second half eta); ``cov`` is the parameter
    covariance (mas^2).
    """
    var = np.einsum("ij,jk,ik->i", grid_design, cov, grid_design)
    g = grid_design.shape[0] // 2
    return float(np.sqrt(np.mean(var[:g] + var[g:])))


def _build_wcs(initial: WCS, model: str, theta: NDArray, centre: tuple[float, float], half: float, ra0: float,
               dec0: float, shape: tuple[int, int]) -> WCS:
    """The corrected WCS: exact for a linear model on a linear TAN WCS, else fitted to a dense model grid."""
    ny, nx = shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        linear_tan = (model != "poly3" and not initial.sip and initial.wcs.ctype[0].endswith("TAN")
                      and initial.wcs.ctype[1].endswith("TAN"))
        if linear_tan:
            # written: (xi, eta) = M (pix - crpix); corrected: (xi, eta) + d(p, q) with d linear in (xi, eta)
            cd = initial.pixel_scale_matrix * 3.6e6  # mas per pixel
            ax, ae, _, _ = _design(model, np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))
            d0 = np.array([ax[0] @ theta, ae[0] @ theta])
            lmat = np.array([[ax[1] @ theta - d0[0], ax[2] @ theta - d0[0]],
                             [ae[1] @ theta - d0[1], ae[2] @ theta - d0[1]]]) / half
            # d = d0 + L ((xi, eta) - centre);  new map: (I + L) M (pix - crpix) + d0 - L centre
            new_cd = (np.eye(2) + lmat) @ cd
            off = d0 - lmat @ np.asarray(centre)
            crpix0 = initial.wcs.crpix - 1.0
            # solve new_cd (pix - crpix') = new_cd (pix - crpix0) + off  ->  crpix' = crpix0 - new_cd^-1 off
            new_crpix = crpix0 - np.linalg.solve(new_cd, off)
            w = initial.deepcopy()
            w.wcs.crpix = new_crpix + 1.0
            if w.wcs.has_cd():
                w.wcs.cd = new_cd / 3.6e6
            else:
                w.wcs.pc = new_cd / 3.6e6
                w.wcs.cdelt = [1.0, 1.0]
            w.wcs.set()
            w.pixel_shape = (nx, ny)
            return w
        gx, gy = _grid(shape, 25)
        gra, gdec = initial.all_pix2world(gx, gy, 0)
        xi, eta = _tangent(gra, gdec, ra0, dec0)
        ax, ae, _, _ = _design(model, (xi - centre[0]) / half, (eta - centre[1]) / half)
        nra, ndec = _untangent(xi + ax @ theta, eta + ae @ theta, ra0, dec0)
        w = fit_wcs_from_points((gx, gy), SkyCoord(nra * u.deg, ndec * u.deg), proj_point="center",
                                projection="TAN", sip_degree=3 if model == "poly3" else None)
        w.pixel_shape = (nx, ny)
        return w


def shift_wcs(wcs: WCS, dra_mas: float, ddec_mas: float) -> WCS:
    """A copy of ``wcs`` whose sky positions are all moved by ``(dra_mas, ddec_mas)``.

    The shift moves the reference point (CRVAL); over an image of a few
    arcminutes the position change differs from the requested shift by a
    fraction ~(field size in radians)^2 of it, far below a micro-arcsecond.

    Parameters
    ----------
    wcs
        A celestial WCS.
    dra_mas, ddec_mas
        Shift in RA cos(Dec) and in Dec, mas.
    """
    out = wcs.deepcopy()
    ra0, dec0 = out.wcs.crval
    out.wcs.crval = [ra0 + dra_mas / 3.6e6 / np.cos(np.radians(dec0)), dec0 + ddec_mas / 3.6e6]
    out.wcs.set()
    return out


def sky_error_mas(w_fit: WCS, w_true: WCS, shape: tuple[int, int], n: int = 15) -> float:
    """Root mean square over an ``n`` x ``n`` pixel grid of the 2-D sky distance between two WCSs, mas."""
    gx, gy = _grid(shape, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        ta, td = w_true.all_pix2world(gx, gy, 0)
        fa, fd = w_fit.all_pix2world(gx, gy, 0)
    dra = ((fa - ta + 180.0) % 360.0 - 180.0) * np.cos(np.radians(td))
    return float(np.sqrt(np.mean(dra**2 + (fd - td) ** 2)) * 3.6e6)


# --------------------------------------------------------------------------- one image


@dataclass
class AstrometricSolution:
    """Result of `solve_astrometry`: the fit plus the stars it used.

    Attributes
    ----------
    fit
        The `AstrometricFit`.
    x, y
        Pixel centroids of the matched stars (0-based).
    ref_index
        Row of each matched star in the reference arrays given.
    ra_ref, dec_ref
        Reference positions at the image epoch, deg.
    residuals_mas
        (n, 2) residuals (dRA cos dec, dDec; reference minus corrected WCS) of
        all matched stars, mas; ``fit.used`` marks those kept.
    n_detected
        Stars detected on the image (before matching).
    centroid
        Centroid method used (``"window"`` or ``"psf"``).
    fwhm_px
        Measured FWHM, pixels.
    detections
        The output of `detect_stars`.
    xy_err
        (n, 2) centroid errors of the matched stars, pixels.
    """

    fit: AstrometricFit
    x: NDArray
    y: NDArray
    ref_index: NDArray
    ra_ref: NDArray
    dec_ref: NDArray
    residuals_mas: NDArray
    n_detected: int
    centroid: str
    fwhm_px: float
    detections: dict[str, NDArray]
    xy_err: NDArray

    @property
    def star_errors_mas(self) -> NDArray:
        """Per matched star, the error of its position on this image along one sky axis, mas.

        The centroid error (mean of the two axes) and the fit's extra per-star
        scatter, in quadrature: what a star's residual scatters by, without
        the reference catalog's error.
        """
        pix_mas = float(np.sqrt(abs(np.linalg.det(self.fit.wcs.pixel_scale_matrix)))) * 3.6e6
        cen = np.sqrt(np.mean(self.xy_err**2, axis=1)) * pix_mas
        return np.hypot(cen, self.fit.extra_scatter_mas)

    @property
    def wcs(self) -> WCS:
        """The corrected WCS."""
        return self.fit.wcs

    @property
    def sigma_mas(self) -> float:
        """Predicted rms sky error of the solution over the image, mas."""
        return self.fit.sigma_mas


def solve_astrometry(
    science: NDArray, variance: NDArray, mask: NDArray, wcs: WCS, reference: dict[str, NDArray], mjd: float, *,
    saturation: float | None = None, match_radius_arcsec: float = 1.5, model: str = "auto",
    min_stars: int = MIN_STARS, psf_profile: galsim.GSObject | None = None, **fit_kw,
) -> AstrometricSolution:
    """Astrometric solution of one image against a reference catalog.

    Parameters
    ----------
    science, variance, mask
        Image planes (jspdb mask bits).
    wcs
        The delivered WCS.
    reference
        Arrays ``ra``, ``dec`` (deg at ``ref_epoch``), ``ref_epoch`` (Julian
        yr, scalar or array), and optionally ``pmra``, ``pmdec`` (mas/yr),
        ``ra_error``, ``dec_error`` (mas), ``pmra_error``, ``pmdec_error``
        (mas/yr). Missing errors: position 1 mas, proper motion 5 mas/yr.
    mjd
        Epoch of the image, MJD.
    saturation
        Saturation level, science units.
    match_radius_arcsec
        First matching radius with the delivered WCS, arcsec; after the first
        fit stars are re-matched within 5 sigma of the combined errors
        (at most this radius).
    model, min_stars, fit_kw
        Passed to `fit_wcs`.
    psf_profile
        The image's PSF (GalSim profile in arcsec, without the pixel), when
        known in advance (the instrument PSF of a space survey,
        `jspdb.concordance.psf_ee.psf_profile`): undersampled images are then
        centroided with it (`detect_stars` ``centroid="model"``).

    Returns
    -------
    AstrometricSolution

    Raises
    ------
    ValueError
        "too few matched stars" when fewer than ``min_stars`` stars match.
    """
    ref = {k: np.asarray(v, dtype=float) for k, v in reference.items()}
    nref = len(ref["ra"])
    if nref == 0:
        raise ValueError("too few matched stars: no reference stars over the image")

    def col(name: str, default: float) -> NDArray:
        v = ref.get(name)
        return np.full(nref, default) if v is None else np.where(np.isfinite(v), v, default)

    epoch = float(np.nanmedian(np.atleast_1d(ref.get("ref_epoch", 2016.0))))
    rra, rdec = reference_at_epoch(ref["ra"], ref["dec"], col("pmra", 0.0), col("pmdec", 0.0), epoch, mjd)
    era, edec = reference_errors_at_epoch(col("ra_error", 1.0), col("dec_error", 1.0), ref.get("pmra_error"),
                                          ref.get("pmdec_error"), epoch, mjd)
    psf = None
    if psf_profile is not None:
        scale_arcsec = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3600.0
        psf = pixel_psf(psf_profile, scale_arcsec)
    det = detect_stars(science, variance, mask, saturation=saturation, psf=psf)
    ndet = len(det["x"])
    xy_err = np.column_stack([det["x_err"], det["y_err"]])
    w = wcs
    fit = None
    radius = match_radius_arcsec
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            ra, dec = w.all_pix2world(det["x"], det["y"], 0)
        i, j, _ = match_to_reference(ra, dec, rra, rdec, radius)
        if len(i) < min_stars:
            raise ValueError(f"too few matched stars for an astrometric fit: {len(i)} of {ndet} detected stars "
                             f"match the reference catalog within {radius:.2f} arcsec (need {min_stars})")
        fit = fit_wcs(det["x"][i], det["y"][i], rra[j], rdec[j], shape=science.shape, initial=wcs,
                      xy_err=xy_err[i], radec_err_mas=np.column_stack([era[j], edec[j]]), model=model,
                      min_stars=min_stars, **fit_kw)
        w = fit.wcs
        # second pass: re-match with the fitted WCS, within 5 sigma of the errors (at least 0.1")
        pix_mas = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3.6e6
        typ = np.sqrt(np.median(np.sum((xy_err[i] * pix_mas) ** 2, 1) + era[j] ** 2 + edec[j] ** 2)
                      + 2 * fit.extra_scatter_mas**2)
        radius = float(np.clip(5.0 * typ / 1000.0, 0.1, match_radius_arcsec))
    assert fit is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        fra, fdec = fit.wcs.all_pix2world(det["x"][i], det["y"][i], 0)
    res = np.column_stack([((rra[j] - fra + 180.0) % 360.0 - 180.0) * np.cos(np.radians(rdec[j])) * 3.6e6,
                           (rdec[j] - fdec) * 3.6e6])
    return AstrometricSolution(fit=fit, x=det["x"][i], y=det["y"][i], ref_index=j, ra_ref=rra[j], dec_ref=rdec[j],
                               residuals_mas=res, n_detected=ndet, centroid=str(det["centroid"]),
                               fwhm_px=float(det["fwhm_px"]), detections=det, xy_err=xy_err[i])
