"""Tie the zero points of overlapping images of one band to one scale (pure function).

Each image has a zero point from the reference catalog (`solve_photometry`),
good to the precision of the reference stars' synthetic magnitudes; the many
stars common to overlapping images measure the zero-point *differences* much
better. `tie_zeropoints` solves, by weighted least squares, for one zero point
per image and one magnitude per common star:

    zp_i - 2.5 log10(f_is) = m_s          (every star s measured on image i)
    zp_i = zp_i^ref                       (anchor, weight 1 / err_i^2)

so the images keep the reference scale on average (anchored by the reference
zero points weighted by their errors) while their differences come from the
common stars. Stars whose residual exceeds ``clip_sigma`` are dropped and the
fit repeated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["AstrometricTie", "TieResult", "tie_astrometry", "tie_offsets", "tie_zeropoints"]


@dataclass
class TieResult:
    """Result of `tie_zeropoints`.

    Attributes
    ----------
    zeropoint_mag, zeropoint_err_mag
        Tied zero point of each image and its 1-sigma error, AB mag (same keys as the input).
    shift_mag
        Tied minus input zero point of each image, mag.
    residual_rms_mag
        Weighted rms of the star-by-star residuals after the tie, mag.
    offset_rms_mag
        Rms over images of the zero-point change needed to bring the images
        to one scale (a measure of how discordant the inputs were), mag.
    n_stars, n_measurements, n_rejected
        Common stars used, measurements used, measurements clipped.
    """

    zeropoint_mag: dict
    zeropoint_err_mag: dict
    shift_mag: dict
    residual_rms_mag: float
    offset_rms_mag: float
    n_stars: int
    n_measurements: int
    n_rejected: int


def tie_zeropoints(
    zeropoints: Mapping[object, float], zeropoint_errs: Mapping[object, float],
    star_fluxes: Mapping[object, tuple[Sequence, NDArray, NDArray]], *, clip_sigma: float = 4.0,
    max_iter: int = 5,
) -> TieResult:
    """Adjust per-image zero points so that all images of a band share one scale.

    Parameters
    ----------
    zeropoints, zeropoint_errs
        Per image (any hashable key): zero point from the reference catalog
        and its 1-sigma error, AB mag.
    star_fluxes
        Per image: ``(star_ids, flux, flux_err)``, instrumental total fluxes
        (image units) of stars measured on it; stars are matched across
        images by id. Only stars seen on two or more images constrain the tie.
    clip_sigma
        Measurements with normalised residuals beyond this are dropped.
    max_iter
        Clipping iterations.

    Returns
    -------
    TieResult
    """
    measurements = {}
    for k, (ids, f, fe) in star_fluxes.items():
        f, fe = np.asarray(f, float), np.asarray(fe, float)
        ok = (f > 0) & np.isfinite(f) & np.isfinite(fe) & (fe > 0)
        measurements[k] = (np.asarray(ids, dtype=object)[ok], -2.5 * np.log10(f[ok]),
                           2.5 / np.log(10) * fe[ok] / f[ok])
    return tie_offsets(zeropoints, zeropoint_errs, measurements, clip_sigma=clip_sigma, max_iter=max_iter)


def tie_offsets(
    anchors: Mapping[object, float], anchor_errs: Mapping[object, float],
    measurements: Mapping[object, tuple[Sequence, NDArray, NDArray]], *, clip_sigma: float = 4.0,
    max_iter: int = 5,
) -> TieResult:
    """Solve ``a_i + v_is = m_s`` for one offset per image and one value per common star.

    The linear tie behind `tie_zeropoints` (``a_i`` a zero point, ``v_is`` an
    instrumental magnitude) and `tie_astrometry` (``a_i`` a position shift,
    ``v_is`` a star's position on image i along one axis): each image's
    offset is anchored at ``anchors[i]`` with weight ``1 / anchor_errs[i]^2``,
    the differences between images come from the stars they share.

    Parameters
    ----------
    anchors, anchor_errs
        Per image (any hashable key): the offset's prior value and 1-sigma error.
    measurements
        Per image: ``(star_ids, values, errors)``; stars are matched across
        images by id, and only stars on two or more images constrain the tie.
    clip_sigma, max_iter
        Measurements with normalised residuals beyond ``clip_sigma`` are
        dropped, for at most ``max_iter`` iterations.

    Returns
    -------
    TieResult
        Its ``zeropoint_mag``, ``zeropoint_err_mag``, ``shift_mag`` and rms
        fields hold the tied offsets, their errors, the changes and the
        residual rms in the units of the inputs.
    """
    images = list(anchors)
    idx = {k: i for i, k in enumerate(images)}
    rows_img, rows_star, mag, sig = [], [], [], []
    for k, (ids, v, ve) in measurements.items():
        if k not in idx:
            continue
        v, ve = np.asarray(v, float), np.asarray(ve, float)
        ok = np.isfinite(v) & np.isfinite(ve) & (ve > 0)
        for s, val, e in zip(np.asarray(ids, dtype=object)[ok], v[ok], ve[ok], strict=True):
            rows_img.append(idx[k])
            rows_star.append(s)
            mag.append(val)
            sig.append(e)
    rows_star_arr = np.asarray(rows_star, dtype=object)
    counts: dict = {}
    for s in rows_star:
        counts[s] = counts.get(s, 0) + 1
    common = np.array([counts[s] >= 2 for s in rows_star], dtype=bool) if rows_star else np.zeros(0, bool)
    img_arr, m_arr, s_arr = np.asarray(rows_img, int), np.asarray(mag, float), np.asarray(sig, float)
    zp0 = np.array([anchors[k] for k in images], float)
    zpe = np.array([max(anchor_errs[k], 1e-6) for k in images], float)
    use = common.copy()
    ni = len(images)
    zp, cov_zp, res = zp0.copy(), np.diag(zpe**2), np.zeros(len(m_arr))
    for _ in range(max_iter):
        stars = list(dict.fromkeys(rows_star_arr[use]))
        sidx = {s: ni + j for j, s in enumerate(stars)}
        npar = ni + len(stars)
        nmat = np.zeros((npar, npar))
        rhs = np.zeros(npar)
        # anchors
        nmat[np.arange(ni), np.arange(ni)] += 1.0 / zpe**2
        rhs[:ni] += zp0 / zpe**2
        # measurements: zp_i + minst - m_s = 0
        for r in np.flatnonzero(use):
            a, b, w = img_arr[r], sidx[rows_star_arr[r]], 1.0 / s_arr[r] ** 2
            nmat[a, a] += w
            nmat[b, b] += w
            nmat[a, b] -= w
            nmat[b, a] -= w
            rhs[a] -= w * m_arr[r]
            rhs[b] += w * m_arr[r]
        cov = np.linalg.inv(nmat)
        theta = cov @ rhs
        zp, cov_zp = theta[:ni], cov[:ni, :ni]
        res = np.full(len(m_arr), np.nan)
        for r in np.flatnonzero(common):
            s = rows_star_arr[r]
            if s in sidx:
                res[r] = zp[img_arr[r]] + m_arr[r] - theta[sidx[s]]
        z = np.abs(res) / s_arr
        new = common & np.isfinite(z) & (z < clip_sigma)
        if np.array_equal(new, use):
            break
        use = new
    w = 1.0 / s_arr[use] ** 2
    rms = float(np.sqrt(np.sum(w * res[use] ** 2) / np.sum(w))) if use.any() else float("nan")
    shift = zp - zp0
    return TieResult(zeropoint_mag={k: float(zp[i]) for k, i in idx.items()},
                     zeropoint_err_mag={k: float(np.sqrt(cov_zp[i, i])) for k, i in idx.items()},
                     shift_mag={k: float(shift[i]) for k, i in idx.items()},
                     residual_rms_mag=rms, offset_rms_mag=float(np.sqrt(np.mean(shift**2))),
                     n_stars=len({rows_star_arr[r] for r in np.flatnonzero(use)}), n_measurements=int(use.sum()),
                     n_rejected=int(common.sum() - use.sum()))


@dataclass
class AstrometricTie:
    """Result of `tie_astrometry`.

    Attributes
    ----------
    shift_mas
        Per image: ``(dra_cosdec, ddec)`` to add to every sky position of
        the image's solution, mas.
    shift_err_mas
        Per image: 1-sigma errors of the two shifts, mas.
    residual_rms_mas
        Weighted rms of the star-by-star residuals after the tie (both axes), mas.
    n_stars
        Stars common to two or more images that constrained the tie.
    """

    shift_mas: dict
    shift_err_mas: dict
    residual_rms_mas: float
    n_stars: int


def tie_astrometry(
    anchor_errs_mas: Mapping[object, float],
    star_residuals: Mapping[object, tuple[Sequence, NDArray, NDArray, NDArray]], *, clip_sigma: float = 4.0,
) -> AstrometricTie:
    """Bring the astrometric solutions of overlapping images (any survey) into one frame.

    Each image's solution is tied to the reference catalog; its error is
    dominated by the reference stars it happened to use (their proper-motion
    errors carried to the image epoch), so images of different surveys, which
    use different stars with different weights, disagree by a few mas. Stars
    seen on several images measure those differences with their centroid
    errors only. For each axis this solves, by weighted least squares
    (`tie_offsets`), ``d_i + p_is = P_s`` for one shift ``d_i`` per image
    (anchored at 0 with the solution's own error) and one position per
    common star, where ``p_is`` is the star's position on image i relative
    to the reference (minus the solution's residual).

    Parameters
    ----------
    anchor_errs_mas
        Per image (any hashable key): the solution's 1-sigma position error, mas
        (`AstrometricFit.sigma_mas` / sqrt(2) per axis).
    star_residuals
        Per image: ``(star_ids, dra_mas, ddec_mas, err_mas)``: reference minus
        solution residuals of its matched stars (dRA cos dec, dDec) and each
        star's centroid error per axis, mas.
    clip_sigma
        Measurements beyond this many sigma are dropped.

    Returns
    -------
    AstrometricTie
    """
    zero = {k: 0.0 for k in anchor_errs_mas}
    ties = [tie_offsets(zero, anchor_errs_mas,
                        {k: (ids, -np.asarray(res[axis], float), np.asarray(res[2], float))
                         for k, (ids, *res) in star_residuals.items()}, clip_sigma=clip_sigma)
            for axis in (0, 1)]
    rms = float(np.sqrt(np.nanmean([t.residual_rms_mag**2 for t in ties])))
    return AstrometricTie(
        shift_mas={k: (ties[0].shift_mag[k], ties[1].shift_mag[k]) for k in zero},
        shift_err_mas={k: (ties[0].zeropoint_err_mag[k], ties[1].zeropoint_err_mag[k]) for k in zero},
        residual_rms_mas=rms, n_stars=max(ties[0].n_stars, ties[1].n_stars))
