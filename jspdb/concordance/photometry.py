"""Photometric zero point of one image from matched reference stars (pure functions).

The reference catalog carries synthetic magnitudes of its stars in every
survey band (as Gaia XP synthetic photometry does), so each image is tied
directly to one AB scale per band: ``zp = m_ref + 2.5 log10(flux_total)``, the
AB magnitude that gives one image unit summed over the source.

1. `aperture_fluxes`: background-subtracted fluxes in a small aperture (2 PSF
   FWHM: high S/N, little contamination), with the pixels of neighbouring
   sources (sep segmentation) masked.
2. `aperture_correction`: the ratio of total to aperture flux from the curve
   of growth of the image's own bright, isolated stars (flux-weighted median
   of the star-by-star growth between the small and a large aperture); the
   light beyond the large aperture from a PSF model
   (`jspdb.concordance.psf_ee`).
3. `fit_zeropoint`: weighted mean with clipping, an extra scatter fitted so
   that the chi-square matches its degrees of freedom (honest error), and a
   linear colour term in a reference colour when the star count and colour
   range support it (else fixed, by default to zero).
4. `solve_photometry`: all of the above for one image, and forced PSF
   photometry of the same stars on the same scale (`PSFPhotometry`,
   `jspdb.concordance.psf_phot`), which carries zero points across surveys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sep
from numpy.typing import NDArray

from jspdb.concordance.psf_ee import encircled_energy, has_instrument_psf, has_psf_model, image_psf
from jspdb.concordance.psf_fit import UNDERSAMPLED_FWHM_PX
from jspdb.concordance.psf_phot import (
    DilationField,
    dilation_grid,
    fit_dilation_field,
    fit_dilations,
    forced_fluxes,
    other_sources,
)
from jspdb.concordance.stats import extra_variance
from jspdb.ingest.masks import UNUSABLE as _BAD_BITS

__all__ = [
    "PSFPhotometry",
    "PhotometricSolution",
    "ZeroPoint",
    "aperture_correction",
    "aperture_fluxes",
    "fit_zeropoint",
    "solve_photometry",
]

_PSF_TO_MAG = 2.5 / np.log(10.0)
#: `aperture_correction`: the stars above this S/N in the small aperture, at most this many, brightest first.
APCORR_MIN_SNR, APCORR_MAX_STARS = 50.0, 30


def _planes(science: NDArray, variance: NDArray, mask: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """(science, 1-sigma error, unusable) as sep wants them; unknown variances get the median."""
    sci = np.ascontiguousarray(science, dtype=np.float64)
    bad = (np.asarray(mask) & _BAD_BITS) != 0
    var = np.asarray(variance, dtype=np.float64)
    ok = np.isfinite(var) & (var > 0)
    var = np.where(ok, var, np.nanmedian(var[ok]) if ok.any() else 1.0)
    return sci, np.sqrt(var), bad


def _prepare(science: NDArray, variance: NDArray, mask: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """`_planes` with sep's 64x64-pixel background mesh subtracted."""
    sci, err, bad = _planes(science, variance, mask)
    bkg = sep.Background(sci, mask=bad, bw=64, bh=64)
    return np.ascontiguousarray(sci - bkg.back()), err, bad


def _neighbour_masks(data: NDArray, err: NDArray, bad: NDArray, x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
    """Segmentation map (1.5 sigma, deblended) and the segment id of each star (0: none)."""
    _, seg = sep.extract(data, 1.5, err=err, mask=bad, minarea=3, deblend_cont=0.005, segmentation_map=True)
    ny, nx = data.shape
    ix = np.clip(np.round(x).astype(int), 0, nx - 1)
    iy = np.clip(np.round(y).astype(int), 0, ny - 1)
    return seg, seg[iy, ix]


def _masked_sum(data: NDArray, err: NDArray, bad: NDArray, seg: NDArray, sid: NDArray, x: NDArray, y: NDArray,
                radius: float, grow: int) -> tuple[NDArray, NDArray, NDArray]:
    flux, ferr, clean = np.empty(len(x)), np.empty(len(x)), np.ones(len(x), bool)
    ny, nx = data.shape
    r = int(np.ceil(radius)) + grow + 2
    for k in range(len(x)):
        x0, x1 = max(int(x[k]) - r, 0), min(int(x[k]) + r + 1, nx)
        y0, y1 = max(int(y[k]) - r, 0), min(int(y[k]) + r + 1, ny)
        other = other_sources(seg[y0:y1, x0:x1], int(sid[k]), grow)
        m = np.zeros(data.shape, bool)
        m[y0:y1, x0:x1] = other
        f, e, fl = sep.sum_circle(data, [x[k]], [y[k]], radius, err=err, mask=m | bad)
        flux[k], ferr[k] = f[0], e[0]
        clean[k] = (fl[0] & sep.APER_HASMASKED) == 0
        # the fraction of the aperture lost to neighbours, as an extra flag
        if other.any():
            yy, xx = np.mgrid[y0:y1, x0:x1]
            inside = (xx - x[k]) ** 2 + (yy - y[k]) ** 2 < radius**2
            if np.count_nonzero(other & inside) > 0.1 * np.count_nonzero(inside):
                clean[k] = False
    return flux, ferr, clean


def aperture_fluxes(
    science: NDArray, variance: NDArray, mask: NDArray, x: NDArray, y: NDArray, radius_px: float, *,
    mask_neighbours: bool = False, grow: int = 1,
) -> tuple[NDArray, NDArray, NDArray[np.bool_]]:
    """Background-subtracted circular-aperture fluxes (image units) at (x, y).

    Parameters
    ----------
    science, variance, mask
        Image planes (jspdb mask bits).
    x, y
        Aperture centres, 0-based pixels.
    radius_px
        Aperture radius, pixels.
    mask_neighbours
        Mask the pixels of other sources (sep segmentation at 1.5 sigma,
        grown by ``grow`` pixels) inside the aperture.

    Returns
    -------
    (flux, flux_err, clean)
        ``clean`` is False where the aperture holds flagged pixels (or, with
        ``mask_neighbours``, more than 10 % of it is masked for neighbours).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not mask_neighbours:
        data, err, bad = _prepare(science, variance, mask)
        flux, ferr, flag = sep.sum_circle(data, x, y, radius_px, err=err, mask=bad)
        return flux, ferr, (flag & sep.APER_HASMASKED) == 0
    return _apertures(science, variance, mask, x, y, radius_px, grow).fluxes


@dataclass(frozen=True)
class _Apertures:
    """Prepared planes, the segmentation and the neighbour-masked aperture fluxes of some stars."""

    data: NDArray
    err: NDArray
    bad: NDArray
    seg: NDArray
    sid: NDArray
    fluxes: tuple[NDArray, NDArray, NDArray]


def _apertures(science: NDArray, variance: NDArray, mask: NDArray, x: NDArray, y: NDArray, radius: float,
               grow: int = 1) -> _Apertures:
    data, err, bad = _prepare(science, variance, mask)
    seg, sid = _neighbour_masks(data, err, bad, x, y)
    return _Apertures(data, err, bad, seg, sid, _masked_sum(data, err, bad, seg, sid, x, y, radius, grow))


def aperture_correction(
    science: NDArray, variance: NDArray, mask: NDArray, x: NDArray, y: NDArray, r_small: float, r_large: float, *,
    min_snr: float = APCORR_MIN_SNR, max_stars: int = APCORR_MAX_STARS,
) -> tuple[float, float, int]:
    """Aperture correction from the curve of growth of bright isolated stars.

    Parameters
    ----------
    science, variance, mask
        Image planes.
    x, y
        Star positions, 0-based pixels (matched reference stars).
    r_small, r_large
        Photometry aperture and the large aperture taken as total, pixels.
    min_snr
        Stars fainter than this S/N in the small aperture are not used.
    max_stars
        The brightest this many stars are used.

    Returns
    -------
    (apcorr_mag, apcorr_err_mag, n_stars)
        ``apcorr_mag = -2.5 log10(f_large / f_small)`` (negative: the total is
        brighter), its error (flux-weighted scatter over sqrt(n)), stars used.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    a = _apertures(science, variance, mask, x, y, r_small)
    return _curve_of_growth(a, x, y, r_small, r_large, min_snr, max_stars)


def _curve_of_growth(a: _Apertures, x: NDArray, y: NDArray, r_small: float, r_large: float, min_snr: float,
                     max_stars: int) -> tuple[float, float, int]:
    """`aperture_correction` from stars already measured in the small aperture (``a``)."""
    data, err, bad, seg, sid = a.data, a.err, a.bad, a.seg, a.sid
    fs, es, cs = a.fluxes
    # the annulus r_small..r_large with neighbours and flagged pixels masked, scaled by the
    # masked area (the PSF is close to azimuthally symmetric at these radii)
    ones = np.ones_like(data)
    fa, ea = np.full(len(x), np.nan), np.full(len(x), np.nan)
    frac = np.zeros(len(x))
    ny, nx = data.shape
    rr = int(np.ceil(r_large)) + 3
    for k in range(len(x)):
        x0, x1 = max(int(x[k]) - rr, 0), min(int(x[k]) + rr + 1, nx)
        y0, y1 = max(int(y[k]) - rr, 0), min(int(y[k]) + rr + 1, ny)
        other = other_sources(seg[y0:y1, x0:x1], int(sid[k]), 1)
        m = bad.copy()
        m[y0:y1, x0:x1] |= other
        f, e, _ = sep.sum_circann(data, [x[k]], [y[k]], r_small, r_large, err=err, mask=m)
        area, _, _ = sep.sum_circann(ones, [x[k]], [y[k]], r_small, r_large, mask=m)
        full = np.pi * (r_large**2 - r_small**2)
        frac[k] = area[0] / full
        if frac[k] > 0:
            fa[k], ea[k] = f[0] / frac[k], e[0] / frac[k]
    fl = fs + fa
    ok = cs & (frac > 0.6) & (fs > 0) & (fl > 0) & (fs / np.maximum(es, 1e-30) > min_snr)
    if ok.sum() < 3:
        ok = cs & (frac > 0.6) & (fs > 0) & (fl > 0)
    if ok.sum() == 0:
        return 0.0, 0.05, 0
    idx = np.flatnonzero(ok)[np.argsort(-fs[ok])][:max_stars]
    m = -2.5 * np.log10(fl[idx] / fs[idx])
    # robust: median and its error from the MAD; the total cannot be fainter than the aperture
    # (clamped at 0) nor, for any real PSF, brighter by more than 0.3 mag
    med = float(np.median(m))
    mad = 1.4826 * float(np.median(np.abs(m - med)))
    err = 1.2533 * max(mad, 1e-3) / np.sqrt(len(m))
    return float(np.clip(med, -0.3, 0.0)), float(err), int(len(m))


@dataclass
class ZeroPoint:
    """Result of `fit_zeropoint` (magnitudes AB).

    Attributes
    ----------
    zeropoint_mag, zeropoint_err_mag
        Zero point (at colour ``colour_pivot``) and its 1-sigma error.
    colour_term
        ``k`` in ``zp(c) = zp + k (c - colour_pivot)`` (None when no colour was given).
    n_stars, n_rejected
        Stars kept and clipped.
    residuals_mag
        Residuals of the kept stars (star zero point minus model).
    colour_fitted
        True when ``k`` was fitted, False when fixed.
    colour_pivot
        Colour at which ``zeropoint_mag`` applies.
    extra_scatter_mag
        Scatter added in quadrature to the star errors.
    used
        Mask of the input stars kept.
    """

    zeropoint_mag: float
    zeropoint_err_mag: float
    colour_term: float | None
    n_stars: int
    n_rejected: int
    residuals_mag: NDArray
    colour_fitted: bool = False
    colour_pivot: float = 0.0
    extra_scatter_mag: float = 0.0
    used: NDArray = field(default_factory=lambda: np.zeros(0, bool))


def fit_zeropoint(
    flux: NDArray, flux_err: NDArray, mag_ref: NDArray, mag_ref_err: NDArray, *, colour: NDArray | None = None,
    clip_sigma: float = 3.0, min_stars: int = 3, colour_min_stars: int = 20, colour_min_range: float = 0.5,
    fixed_colour_term: float = 0.0, colour_pivot: float | None = None, fit_colour: bool = True,
) -> ZeroPoint:
    """Weighted, clipped zero point and colour term.

    Parameters
    ----------
    flux, flux_err
        Total (aperture-corrected) fluxes of matched stars, image units.
    mag_ref, mag_ref_err
        Reference (synthetic) AB magnitudes in the image's band.
    colour
        Reference colour of each star (AB mag); with it a linear colour term
        ``zp(c) = zp + k (c - pivot)`` is fitted when at least
        ``colour_min_stars`` stars span ``colour_min_range`` mag (5-95 %
        range), else ``k = fixed_colour_term``.
    clip_sigma
        Clipping threshold on the normalised residuals.
    min_stars
        Fewest usable stars (ValueError "too few usable reference stars").
    colour_pivot
        Colour at which the zero point is quoted (default: median colour).
    fit_colour
        False: never fit the colour term (``k = fixed_colour_term``), as when
        ``mag_ref`` is synthetic photometry in the image's own band: the
        bands do not differ, and a fitted term only turns reference noise
        into a slope that biases the zero point quoted at ``colour_pivot``
        (by 20-35 mmag for LSST at a pivot of 0 in g - i, measured on a 2'
        simulated field).
    """
    flux, flux_err, mag_ref, mag_ref_err = (np.asarray(v, float) for v in (flux, flux_err, mag_ref, mag_ref_err))
    ok = (flux > 0) & np.isfinite(flux) & np.isfinite(mag_ref) & np.isfinite(mag_ref_err) & np.isfinite(flux_err)
    if colour is not None:
        colour = np.asarray(colour, float)
        ok &= np.isfinite(colour)
    if ok.sum() < min_stars:
        raise ValueError(f"too few usable reference stars for a zero point: {int(ok.sum())} "
                         f"(need at least {min_stars})")
    zp_i = mag_ref + 2.5 * np.log10(np.where(ok, flux, 1.0))
    s2 = mag_ref_err**2 + (_PSF_TO_MAG * flux_err / np.where(ok, flux, 1.0)) ** 2
    c0 = float(np.median(colour[ok])) if colour is not None and colour_pivot is None else (colour_pivot or 0.0)
    dc = np.where(ok, colour - c0, 0.0) if colour is not None else np.zeros_like(zp_i)
    fit_k = False
    if fit_colour and colour is not None and ok.sum() >= colour_min_stars:
        lo, hi = np.percentile(colour[ok], [5, 95])
        fit_k = hi - lo >= colour_min_range
    k = fixed_colour_term if colour is not None else 0.0
    use = ok.copy()
    extra = 0.0
    zp = float(np.median(zp_i[ok]))
    cov = np.array([[1.0]])
    for _ in range(10):
        for _ in range(10):
            w = 1.0 / (s2[use] + extra)
            if fit_k:
                a = np.column_stack([np.ones(use.sum()), dc[use]])
                nmat = (a.T * w) @ a
                cov = np.linalg.inv(nmat)
                zp, k = cov @ ((a.T * w) @ zp_i[use])
                npar = 2
            else:
                cov = np.array([[1.0 / np.sum(w)]])
                zp = float(np.sum(w * (zp_i[use] - k * dc[use])) / np.sum(w))
                npar = 1
            res = zp_i - zp - k * dc
            new = extra_variance(res[use] ** 2, s2[use], use.sum() - npar)
            if abs(new - extra) <= 1e-3 * max(extra, 1e-10):
                extra = new
                break
            extra = new
        z = np.abs(res) / np.sqrt(s2 + extra)
        # clip against a robust width too, so one gross outlier cannot hide behind the extra scatter
        med = np.median(res[use])
        mad = 1.4826 * np.median(np.abs(res[use] - med))
        new_use = ok & (z < clip_sigma) & (np.abs(res - med) < max(clip_sigma * 1.5 * mad, 0.01))
        if new_use.sum() < min_stars or np.array_equal(new_use, use):
            break
        use = new_use
    err = float(np.sqrt(cov[0, 0]))
    return ZeroPoint(zeropoint_mag=float(zp), zeropoint_err_mag=err,
                     colour_term=(float(k) if colour is not None else None), n_stars=int(use.sum()),
                     n_rejected=int(ok.sum() - use.sum()), residuals_mag=res[use], colour_fitted=bool(fit_k),
                     colour_pivot=c0, extra_scatter_mag=float(np.sqrt(extra)), used=use)


#: Aperture S/N above which a star measures the PSF dilation and the PSF-to-total ratio.
PSF_BRIGHT_SNR = 100.0
#: Radius of the forced PSF fit, in units of the FWHM (at least 2.5 pixels): the core, where the star dominates.
PSF_FIT_FWHM = 1.5
#: Aperture S/N above which a star helps measure the PSF dilation across the image.
PSF_SHAPE_SNR = 50.0


@dataclass(frozen=True)
class PSFPhotometry:
    """Forced PSF photometry of an image's stars, scaled to total fluxes.

    Attributes
    ----------
    flux, flux_err
        Total fluxes (image units): PSF fluxes times the PSF-to-total ratio; NaN where unusable.
    usable
        Fitted with enough clean pixels and no flagged pixel within the fit radius.
    to_total_mag, to_total_err_mag
        ``-2.5 log10`` of the median ratio of the aperture-corrected total
        to the PSF flux over the bright stars, and its error, mag.
    radius_px
        Radius of the fitted pixels, pixels.
    dilation
        The PSF dilation across the image, fitted on the stars with S/N > `PSF_SHAPE_SNR`.
    n_bright
        Bright stars behind the ratio.
    """

    flux: NDArray
    flux_err: NDArray
    usable: NDArray
    to_total_mag: float
    to_total_err_mag: float
    radius_px: float
    dilation: DilationField
    n_bright: int


def _psf_photometry(a: _Apertures, x: NDArray, y: NDArray, tot: NDArray, tot_err: NDArray, clean: NDArray,
                    survey: str, lam_nm: float, pixel_scale_arcsec: float, fwhm_px: float) -> PSFPhotometry | None:
    """Forced PSF fluxes scaled to the aperture totals of the bright stars; None with fewer than 3 bright stars."""
    data, err, bad, seg, sid = a.data, a.err, a.bad, a.seg, a.sid
    snr = np.where(clean & (tot_err > 0), tot / np.where(tot_err > 0, tot_err, 1.0), 0.0)
    order = np.argsort(-snr)
    bright = order[snr[order] > PSF_BRIGHT_SNR][:150]
    if len(bright) < 5:
        bright = order[snr[order] > 30.0][:10]
    if len(bright) < 3:
        return None
    radius = max(PSF_FIT_FWHM * fwhm_px, 2.5)
    grid = dilation_grid(image_psf(survey, lam_nm, pixel_scale_arcsec, fwhm_px), float(pixel_scale_arcsec),
                         int(np.ceil(radius)) + 3)
    var = err**2
    shape_stars = order[snr[order] > PSF_SHAPE_SNR][:400]
    if len(shape_stars) < len(bright):
        shape_stars = bright
    d, de = fit_dilations(data, var, bad, seg, sid[shape_stars], x[shape_stars], y[shape_stars], grid, radius)
    if np.isfinite(d).sum() < 3:
        return None
    dfield = fit_dilation_field(x[shape_stars], y[shape_stars], d, de, data.shape)
    dil = dfield(x, y)
    f, fe, ok = forced_fluxes(data, var, bad, seg, sid, x, y, grid, dil, radius)
    _, _, flag = sep.sum_circle(data, x, y, radius, mask=bad)
    ok &= (flag & sep.APER_HASMASKED) == 0
    sel = bright[ok[bright] & (f[bright] > 0)]
    if len(sel) < 3:
        return None
    m = -2.5 * np.log10(tot[sel] / f[sel])
    med = float(np.median(m))
    mad = 1.4826 * float(np.median(np.abs(m - med)))
    scale = 10 ** (-0.4 * med)
    return PSFPhotometry(flux=np.where(ok, f * scale, np.nan), flux_err=np.where(ok, fe * scale, np.nan), usable=ok,
                         to_total_mag=med, to_total_err_mag=1.2533 * max(mad, 1e-3) / np.sqrt(len(sel)),
                         radius_px=radius, dilation=dfield, n_bright=len(sel))


@dataclass
class PhotometricSolution:
    """Result of `solve_photometry`.

    Attributes
    ----------
    zeropoint
        The `ZeroPoint` fit (of total fluxes).
    aperture_radius_px, total_radius_px
        Photometry aperture and the aperture taken as total, pixels.
    apcorr_mag, apcorr_err_mag
        Aperture correction (total minus aperture magnitude) and its error.
    flux, flux_err
        Aperture-corrected (total) instrumental fluxes of the input stars,
        image units (NaN where unusable).
    usable
        Stars with clean apertures.
    colour, colour_ref
        Colour of each star and its name (e.g. ``"lsst_g-lsst_i"``).
    psf_ee_total
        PSF model's encircled energy at the total radius (fraction, 0-1; 1.0:
        no model), already included in ``apcorr_mag``.
    psf
        Forced PSF photometry of the same stars, scaled to the same totals on
        the bright stars (None: no PSF model or too few bright stars). Its
        fluxes carry the zero points across surveys; ``flux`` stays the
        aperture total, which measures bright stars more repeatably.
    """

    zeropoint: ZeroPoint
    aperture_radius_px: float
    total_radius_px: float
    apcorr_mag: float
    apcorr_err_mag: float
    flux: NDArray
    flux_err: NDArray
    usable: NDArray
    colour: NDArray | None
    colour_ref: str | None
    psf_ee_total: float = 1.0
    psf: PSFPhotometry | None = None

    @property
    def zeropoint_mag(self) -> float:
        """Zero point, AB mag giving one image unit (total), at the pivot colour."""
        return self.zeropoint.zeropoint_mag

    @property
    def zeropoint_err_mag(self) -> float:
        """1-sigma error of the zero point including the aperture correction's, mag."""
        return float(np.hypot(self.zeropoint.zeropoint_err_mag, self.apcorr_err_mag))


def solve_photometry(
    science: NDArray, variance: NDArray, mask: NDArray, x: NDArray, y: NDArray, mag_ref: NDArray,
    mag_ref_err: NDArray, *, fwhm_px: float, colour: NDArray | None = None, colour_ref: str | None = None,
    aperture_fwhm: float = 2.0, total_fwhm: float = 4.0, psf_ee_total: float | None = None,
    survey: str | None = None, lam_nm: float | None = None, pixel_scale_arcsec: float | None = None,
    psf_photometry: bool = True, **fit_kw,
) -> PhotometricSolution:
    """Zero point of one image from matched reference stars.

    Parameters
    ----------
    science, variance, mask
        Image planes (jspdb mask bits).
    x, y
        Pixel positions of the matched reference stars (0-based).
    mag_ref, mag_ref_err
        Their synthetic AB magnitudes in the image's band.
    fwhm_px
        PSF FWHM, pixels.
    colour, colour_ref
        Reference colour of each star (AB mag) and its name, for the colour term.
    aperture_fwhm, total_fwhm
        Photometry aperture and "total" aperture radii in units of the FWHM
        (at least 3 pixels, and the total at least twice the aperture).
    psf_ee_total
        Fraction of the PSF's flux inside the total aperture according to a
        PSF model. None (default): from `jspdb.concordance.psf_ee.encircled_energy`
        when ``survey``, ``lam_nm`` and ``pixel_scale_arcsec`` are given and the
        survey has a model, else 1.0 (the light beyond the total aperture is
        then missed, see docs/concordance.md).
    survey
        Survey of the image (``"lsst"``, ``"euclid"``, ``"roman"``), for the PSF model.
    lam_nm
        Effective wavelength of the image's band, nm.
    pixel_scale_arcsec
        Pixel scale of the image, arcsec per pixel.
    psf_photometry
        Also measure the stars by forced PSF fits (`jspdb.concordance.psf_phot`)
        scaled to the aperture-corrected totals of the bright stars, when the
        survey has a PSF model and the image at least 3 bright stars
        (``PhotometricSolution.psf``). Crowded faint stars are then measured
        without most of the light of their neighbours (docs/concordance.md).
    fit_kw
        Passed to `fit_zeropoint`.

    Returns
    -------
    PhotometricSolution
    """
    r_ap = max(aperture_fwhm * fwhm_px, 3.0)
    r_tot = max(total_fwhm * fwhm_px, 2.0 * r_ap)
    x, y = np.asarray(x, float), np.asarray(y, float)
    a = _apertures(science, variance, mask, x, y, r_ap)
    flux, ferr, clean = a.fluxes
    modelled = survey is not None and lam_nm is not None and pixel_scale_arcsec is not None
    ee_tot = (encircled_energy(survey, lam_nm, pixel_scale_arcsec, r_tot, fwhm_px=fwhm_px)
              if modelled and has_psf_model(survey) else 1.0)
    if modelled and has_instrument_psf(survey) and fwhm_px < UNDERSAMPLED_FWHM_PX:
        # Undersampled: a curve of growth measured from a few pixels depends on where each star falls in
        # its pixel (Euclid H: 14 mmag off on the accuracy field); the instrument PSF gives it exactly.
        apc, apc_err = -2.5 * float(np.log10(ee_tot / encircled_energy(survey, lam_nm, pixel_scale_arcsec, r_ap))), 0.0
    else:
        # the clean stars, as measured above (aperture_correction would measure them again)
        clean_a = _Apertures(a.data, a.err, a.bad, a.seg, a.sid[clean], (flux[clean], ferr[clean], clean[clean]))
        apc, apc_err, _ = _curve_of_growth(clean_a, x[clean], y[clean], r_ap, r_tot, APCORR_MIN_SNR, APCORR_MAX_STARS)
    if psf_ee_total is None:
        psf_ee_total = ee_tot
    apc = apc + 2.5 * np.log10(psf_ee_total)
    scale = 10 ** (-0.4 * apc)
    tot, tot_err = np.where(clean, flux * scale, np.nan), np.where(clean, ferr * scale, np.nan)
    psf = None
    if psf_photometry and modelled and has_psf_model(survey):
        psf = _psf_photometry(a, x, y, tot, tot_err, clean, survey, lam_nm, pixel_scale_arcsec, fwhm_px)
    zp = fit_zeropoint(np.where(clean, tot, np.nan), np.where(clean, tot_err, np.nan), mag_ref, mag_ref_err,
                       colour=colour, **fit_kw)
    return PhotometricSolution(zeropoint=zp, aperture_radius_px=r_ap, total_radius_px=r_tot, apcorr_mag=apc,
                               apcorr_err_mag=apc_err, flux=tot, flux_err=tot_err, usable=clean, colour=colour,
                               colour_ref=colour_ref, psf_ee_total=float(psf_ee_total), psf=psf)
