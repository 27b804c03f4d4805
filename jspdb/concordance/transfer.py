"""Zero points carried from one survey to another through the stars they share (pure functions).

A space image's zero point from the reference catalog alone is poor: the
reference's synthetic magnitudes are precise only for bright stars (Gaia XP,
G < 17.65), which saturate in Euclid and Roman exposures, so the stars left
have 0.05-0.3 mag errors each. The ground survey sees those bright stars
unsaturated, and its own measurements of the fainter stars are precise. So:

1. `fit_transformation`: from the reference catalog's synthetic magnitudes of
   the tile's stars (the bright ones dominate by weight), a colour
   transformation ``m_target - m_base = T(m_blue - m_red)`` between the
   target band and the ground survey's bands (a polynomial in the colour,
   with an intrinsic scatter fitted so that chi-square matches).
2. `transfer_zeropoint`: each star measured on the target image and on the
   ground images predicts the target zero point,
   ``zp_s = m_base,s + T(c_s) + 2.5 log10 f_s`` with ``m_base`` and ``c`` the
   star's ground magnitudes (tied zero points, colour terms applied); their
   weighted mean, clipped, with the transformation's and the ground zero
   points' errors added.
3. `cross_survey_zeropoints`: both steps for every image of a tile whose
   survey is not the ground survey; `combine` weights it with the image's
   own reference zero point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from jspdb.concordance.stats import extra_variance

__all__ = [
    "MAX_GROUND_ERR_MAG",
    "SYSTEMATIC_MAG",
    "ColourTransformation",
    "ImagePhotometry",
    "TransferredZeroPoint",
    "choose_bands",
    "combine",
    "cross_survey_zeropoints",
    "fit_transformation",
    "transfer_zeropoint",
]

_MAG = 2.5 / np.log(10.0)

#: Systematic error of a transferred zero point, mag. The stars that carry it (unsaturated in space,
#: G > 17-19) are faint for the ground survey. With aperture photometry, crowding biased them faint by
#: 8-80 mmag at 19-22 AB (LSST i, z, y) on the star-rich 3' field, and the space zero points came out
#: ~10 mmag high. Forced PSF fluxes (`jspdb.concordance.psf_phot`) are within 3 mmag of the truth to
#: 20-21 AB in g, r and i, to 19-20 AB in z and to 18-19 AB in y (docs/concordance.md); carried through only stars
#: measured to better than `MAX_GROUND_ERR_MAG`, the zero points scatter by ~4 mmag about the truth there.
SYSTEMATIC_MAG = 0.003
#: Ground stars measured less precisely than this (mag) in the base band do not carry a zero point
#: (S/N < ~100: at 19-20 AB in LSST y forced PSF fluxes still come out ~12 mmag bright against the
#: truth: blends below the detection limit and detection-selected stars), unless too few stars pass.
MAX_GROUND_ERR_MAG = 0.010


@dataclass(frozen=True)
class ColourTransformation:
    """``m_target - m_base = sum_k coeffs[k] * c^k`` with ``c = m_blue - m_red`` (AB mag).

    Attributes
    ----------
    base, blue, red
        Band keys of the ground magnitude and of the colour.
    coeffs, cov
        Polynomial coefficients (constant first) and their covariance.
    scatter_mag
        Intrinsic scatter of stars about the relation, mag.
    n_stars
        Stars used.
    """

    base: object
    blue: object
    red: object
    coeffs: NDArray
    cov: NDArray
    scatter_mag: float
    n_stars: int

    def __call__(self, colour: NDArray) -> NDArray:
        return np.polynomial.polynomial.polyval(np.asarray(colour, float), self.coeffs)

    def slope(self, colour: NDArray) -> NDArray:
        """dT/dc at ``colour``."""
        return np.polynomial.polynomial.polyval(np.asarray(colour, float),
                                                np.polynomial.polynomial.polyder(self.coeffs))

    def error(self, colour: float) -> float:
        """1-sigma error of the relation itself at ``colour``, mag."""
        v = np.array([colour**k for k in range(len(self.coeffs))])
        return float(np.sqrt(v @ self.cov @ v))


def choose_bands(target_wl_nm: float, source_wl_nm: Mapping[object, float]) -> tuple[object, object, object]:
    """Ground bands for a target band: ``(base, blue, red)``.

    ``base`` is the band nearest in wavelength; the colour is the widest the
    ground bands offer short of the bluest of four or more (LSST u, whose
    synthetic magnitudes are the noisiest): ``g - y`` for LSST. A wide colour
    measures the stellar temperature best, so the relation holds tightly for
    targets beyond the ground survey's reddest band too.
    """
    bands = sorted(source_wl_nm, key=lambda b: source_wl_nm[b])
    if len(bands) < 2:
        raise ValueError("a colour transformation needs at least two ground bands")
    k = int(np.argmin([abs(source_wl_nm[b] - target_wl_nm) for b in bands]))
    return bands[k], bands[1 if len(bands) >= 4 else 0], bands[-1]


def fit_transformation(target_mag: NDArray, target_err: NDArray, base_mag: NDArray, base_err: NDArray,
                       colour: NDArray, colour_err: NDArray, *, base: object = None, blue: object = None,
                       red: object = None, degree: int = 2, clip_sigma: float = 4.0,
                       max_err_mag: float = 0.05, min_stars: int = 6) -> ColourTransformation:
    """Fit ``target - base = T(colour)`` by weighted least squares with an intrinsic scatter and clipping.

    Parameters
    ----------
    target_mag, target_err, base_mag, base_err, colour, colour_err
        Per star, AB mag (synthetic magnitudes of the reference catalog).
    base, blue, red
        Band keys, stored on the result.
    degree
        Polynomial degree.
    max_err_mag
        Only stars whose magnitude difference and colour are both known
        better than this are used: noisy colours would flatten the relation
        (regression dilution), which no weighting undoes.
    min_stars
        Fewest such stars accepted: a relation of lower degree than the
        stars' colours need biases the transfer by more than its errors say
        (up to 0.2 mag in the near infrared), so too few stars is an error.
    clip_sigma
        Stars beyond this many sigma are dropped (iterated).

    Returns
    -------
    ColourTransformation

    Raises
    ------
    ValueError
        Fewer than ``min_stars`` usable stars.
    """
    y = np.asarray(target_mag, float) - np.asarray(base_mag, float)
    c = np.asarray(colour, float)
    e2 = np.asarray(target_err, float) ** 2 + np.asarray(base_err, float) ** 2
    ce = np.asarray(colour_err, float)
    ok = np.isfinite(y) & np.isfinite(c) & np.isfinite(e2) & np.isfinite(ce) & (e2 > 0)
    ok &= (e2 < max_err_mag**2) & (ce < max_err_mag)
    if ok.sum() < max(min_stars, degree + 2):
        raise ValueError(f"too few stars for a colour transformation: {int(ok.sum())} with errors below "
                         f"{max_err_mag} mag (need {max(min_stars, degree + 2)})")
    deg = int(degree)
    use = ok.copy()
    coeffs = np.zeros(deg + 1)
    s2 = 0.0
    for _ in range(10):
        # errors in the colour enter through the slope at each star
        var = e2 + (np.polynomial.polynomial.polyval(c, np.polynomial.polynomial.polyder(coeffs)) * ce) ** 2
        a = np.vander(c, deg + 1, increasing=True)
        for _ in range(3):  # scatter and solution together
            w = 1.0 / (var + s2)
            nmat = (a[use] * w[use, None]).T @ a[use]
            cov = np.linalg.inv(nmat)
            coeffs = cov @ ((a[use] * w[use, None]).T @ y[use])
            r = y - a @ coeffs
            s2 = extra_variance(r[use] ** 2, var[use], dof=int(use.sum()) - deg - 1)
        z = np.abs(r) / np.sqrt(var + s2)
        new = ok & (z < clip_sigma)
        if np.array_equal(new, use) or new.sum() < deg + 2:
            break
        use = new
    return ColourTransformation(base=base, blue=blue, red=red, coeffs=coeffs, cov=cov,
                                scatter_mag=float(np.sqrt(s2)), n_stars=int(use.sum()))


@dataclass(frozen=True)
class TransferredZeroPoint:
    """A zero point carried from the ground survey (AB mag of one image unit).

    Attributes
    ----------
    zeropoint_mag, zeropoint_err_mag
        The zero point and its 1-sigma error (stars, transformation and
        ground zero points), mag.
    n_stars
        Stars used.
    scatter_mag
        Extra star-to-star scatter fitted, mag.
    transformation
        The colour transformation used.
    """

    zeropoint_mag: float
    zeropoint_err_mag: float
    n_stars: int
    scatter_mag: float
    transformation: ColourTransformation


def transfer_zeropoint(flux: NDArray, flux_err: NDArray, base_mag: NDArray, base_err: NDArray, colour: NDArray,
                       colour_err: NDArray, transformation: ColourTransformation, *, ground_zp_err: float = 0.0,
                       systematic_mag: float = SYSTEMATIC_MAG, max_ground_err_mag: float = MAX_GROUND_ERR_MAG,
                       min_precise: int = 10, clip_sigma: float = 4.0, min_stars: int = 3) -> TransferredZeroPoint:
    """Zero point of a target image from ground magnitudes of the stars on it.

    Parameters
    ----------
    flux, flux_err
        Total instrumental fluxes of the stars on the target image (image units).
    base_mag, base_err, colour, colour_err
        The stars' ground magnitudes in the transformation's base band and
        colour (AB mag), with the errors of their measurement.
    transformation
        From `fit_transformation`.
    ground_zp_err
        Error common to every star from the ground zero points (base band and
        colour), mag.
    systematic_mag
        Error floor added in quadrature for what the statistics do not see
        (`SYSTEMATIC_MAG`).
    max_ground_err_mag, min_precise
        Only stars whose base-band magnitude error is below
        ``max_ground_err_mag`` carry the zero point; when fewer than
        ``min_precise`` are, the ``min_precise`` most precise ones do.
    clip_sigma, min_stars
        Clipping threshold; fewest stars accepted.

    Raises
    ------
    ValueError
        Fewer than ``min_stars`` usable stars.
    """
    f, fe = np.asarray(flux, float), np.asarray(flux_err, float)
    zp = np.asarray(base_mag, float) + transformation(colour) + 2.5 * np.log10(np.where(f > 0, f, np.nan))
    var = ((_MAG * fe / np.where(f > 0, f, np.nan)) ** 2 + np.asarray(base_err, float) ** 2
           + (transformation.slope(colour) * np.asarray(colour_err, float)) ** 2 + transformation.scatter_mag**2)
    ok = np.isfinite(zp) & np.isfinite(var) & (var > 0)
    # the faint ground stars carry what forced photometry cannot remove (blends below the detection limit,
    # the selection of stars detected on the image): keep the precisely measured ones, at least min_precise
    be = np.where(ok, np.asarray(base_err, float), np.inf)
    precise = ok & (be < max_ground_err_mag)
    if precise.sum() < min_precise:
        precise = ok & (be <= np.sort(be)[min(min_precise, int(ok.sum())) - 1]) if ok.any() else ok
    ok = precise
    if ok.sum() < min_stars:
        raise ValueError(f"too few stars for a transferred zero point: {int(ok.sum())} (need {min_stars})")
    use = ok.copy()
    for _ in range(10):
        s2 = extra_variance((zp[use] - np.average(zp[use], weights=1 / var[use])) ** 2, var[use], dof=int(use.sum()) - 1)
        w = 1.0 / (var + s2)
        mean = float(np.sum(w[use] * zp[use]) / np.sum(w[use]))
        z = np.abs(zp - mean) * np.sqrt(w)
        new = ok & (z < clip_sigma)
        if np.array_equal(new, use) or new.sum() < min_stars:
            break
        use = new
    stat = 1.0 / float(np.sum(w[use]))
    cmean = float(np.average(np.asarray(colour, float)[use], weights=w[use]))
    err = float(np.sqrt(stat + transformation.error(cmean) ** 2 + ground_zp_err**2 + systematic_mag**2))
    return TransferredZeroPoint(zeropoint_mag=mean, zeropoint_err_mag=err, n_stars=int(use.sum()),
                                scatter_mag=float(np.sqrt(s2)), transformation=transformation)


def combine(zp1: float, err1: float, zp2: float, err2: float) -> tuple[float, float]:
    """Inverse-variance weighted mean of two independent zero points and its error, mag."""
    w1, w2 = 1.0 / err1**2, 1.0 / err2**2
    return float((w1 * zp1 + w2 * zp2) / (w1 + w2)), float(1.0 / np.sqrt(w1 + w2))


@dataclass(frozen=True)
class ImagePhotometry:
    """One image's calibrated star measurements, as `cross_survey_zeropoints` takes them.

    Attributes
    ----------
    survey, band
        Survey name and band key (the keys of the reference magnitudes).
    wl_nm
        Effective wavelength of the band, nm.
    zeropoint_mag, zeropoint_err_mag
        The image's zero point at colour 0 (tied, for the ground survey) and its error.
    colour_term
        ``zp(c) = zeropoint_mag + colour_term * c``; 0 when none.
    source_id, flux, flux_err
        Its stars: reference ids, total instrumental fluxes and errors (image units).
    colour
        Per star, the colour the colour term multiplies (NaN: unknown, term not applied).
    """

    survey: str
    band: object
    wl_nm: float
    zeropoint_mag: float
    zeropoint_err_mag: float
    colour_term: float
    source_id: Sequence[int]
    flux: NDArray
    flux_err: NDArray
    colour: NDArray


def _ground_mags(images: Sequence[ImagePhotometry]) -> tuple[dict, dict]:
    """Per band: {star: (mag, err)} averaged over the ground images; per band the zero-point error."""
    acc: dict = {}
    zp_err: dict = {}
    for im in images:
        f, fe = np.asarray(im.flux, float), np.asarray(im.flux_err, float)
        c = np.nan_to_num(np.asarray(im.colour, float), nan=0.0)
        m = im.zeropoint_mag + (im.colour_term or 0.0) * c - 2.5 * np.log10(np.where(f > 0, f, np.nan))
        e = _MAG * fe / np.where(f > 0, f, np.nan)
        for s, mi, ei in zip(im.source_id, m, e, strict=True):
            if np.isfinite(mi) and np.isfinite(ei) and ei > 0:
                acc.setdefault(im.band, {}).setdefault(int(s), []).append((mi, ei))
        zp_err.setdefault(im.band, []).append(im.zeropoint_err_mag)
    out = {}
    for band, stars in acc.items():
        out[band] = {}
        for s, v in stars.items():
            mi, ei = np.array(v).T
            w = 1.0 / ei**2
            out[band][s] = (float(np.sum(w * mi) / np.sum(w)), float(1.0 / np.sqrt(np.sum(w))))
    # the epochs of a band share one tied scale: its error does not average down over images
    return out, {b: float(np.min(v)) for b, v in zp_err.items()}


def cross_survey_zeropoints(
    images: Mapping[object, ImagePhotometry], reference: Mapping[object, tuple[Sequence[int], NDArray, NDArray]],
    wl_nm: Mapping[object, float], *, ground_survey: str = "lsst",
) -> dict[object, TransferredZeroPoint | str]:
    """Zero points of every non-ground image carried from the ground survey's images of the same tile.

    Parameters
    ----------
    images
        Per image key: its `ImagePhotometry` (ground images with tied zero points).
    reference
        Per band key: ``(source_ids, synthetic mag, error)`` of the tile's
        reference stars (every band of the target and ground images).
    wl_nm
        Per band key: effective wavelength, nm.
    ground_survey
        The survey whose zero points are carried.

    Returns
    -------
    dict
        Per non-ground image: a `TransferredZeroPoint`, or the reason (str)
        why none could be computed.
    """
    ground = [im for im in images.values() if im.survey == ground_survey]
    gmag, gzp_err = _ground_mags(ground)
    gwl = {b: wl_nm[b] for b in gmag if b in reference}
    refmag = {b: dict(zip((int(s) for s in ids), zip(np.asarray(m, float), np.asarray(e, float), strict=True),
                          strict=True)) for b, (ids, m, e) in reference.items()}
    out: dict = {}
    for key, im in images.items():
        if im.survey == ground_survey:
            continue
        if im.band not in refmag or len(gwl) < 2:
            out[key] = "no ground bands or reference magnitudes for a transfer"
            continue
        base, blue, red = choose_bands(im.wl_nm, gwl)
        # transformation from the reference stars with all four magnitudes
        stars = [s for s in refmag[im.band] if s in refmag[base] and s in refmag[blue] and s in refmag[red]]
        r = {b: np.array([refmag[b][s] for s in stars]).reshape(-1, 2) for b in (im.band, base, blue, red)}
        try:
            t = fit_transformation(r[im.band][:, 0], r[im.band][:, 1], r[base][:, 0], r[base][:, 1],
                                   r[blue][:, 0] - r[red][:, 0], np.hypot(r[blue][:, 1], r[red][:, 1]),
                                   base=base, blue=blue, red=red)
            sid = [int(s) for s in im.source_id]
            have = np.array([s in gmag[base] and s in gmag[blue] and s in gmag[red] for s in sid], bool)
            g = {b: np.array([gmag[b][s] if s in gmag[b] else (np.nan, np.nan) for s in sid]).reshape(-1, 2)
                 for b in (base, blue, red)}
            f = np.where(have, np.asarray(im.flux, float), np.nan)
            slope = float(t.slope(np.nanmedian(g[blue][:, 0] - g[red][:, 0]))) if have.any() else 0.0
            common = np.sqrt(gzp_err[base] ** 2 + slope**2 * (gzp_err[blue] ** 2 + gzp_err[red] ** 2))
            out[key] = transfer_zeropoint(f, np.asarray(im.flux_err, float), g[base][:, 0], g[base][:, 1],
                                          g[blue][:, 0] - g[red][:, 0], np.hypot(g[blue][:, 1], g[red][:, 1]), t,
                                          ground_zp_err=float(common))
        except ValueError as exc:
            out[key] = str(exc)
    return out
