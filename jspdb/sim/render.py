"""Render one image: every source through the image's PSF (GalSim), then noise and detector effects.

Galaxies, and stars brighter than `PHOT_THRESHOLD_E` electrons, are drawn by
Fourier convolution (noiseless); fainter stars by photon shooting, which
carries their own Poisson noise. Gaussian noise of variance ``sky + read_noise^2 + model``
(GalSim `VariableGaussianNoise`) is then added, the sky is subtracted (as the
survey pipelines deliver it), cosmic rays and bad columns are added, and pixels
above the full well are clipped and flagged ``SAT``. Everything is computed in
electrons, then converted to the survey's delivered unit.
"""

from __future__ import annotations

import time
from typing import Any

import galsim
import numpy as np

from jspdb.sim.bands import AB_NJY_ZP, point_source_depth
from jspdb.sim.image import MASK_BITS, SimImage, wcs_from_header
from jspdb.sim.psf import PSFModel
from jspdb.sim.systematics import ImagePlan, mjd_to_jyear

__all__ = [
    "PHOT_THRESHOLD_E",
    "SOURCE_COLUMNS",
    "draw_sources",
    "galaxy_profile",
    "local_jacobian",
    "positions_at_epoch",
    "render_image",
]

#: Stars with fewer electrons than this are photon-shot; brighter ones and galaxies are FFT-drawn.
PHOT_THRESHOLD_E = 2.0e4

#: Per-source columns the renderer reads (besides ``flux_<band>`` and ``leff_<band>``).
SOURCE_COLUMNS = (
    "ra", "dec", "pmra", "pmdec", "ref_epoch", "bulge_fraction", "bulge_n", "bulge_hlr",
    "bulge_e", "disk_hlr", "disk_e", "pa",
)

_GSP = galsim.GSParams(folding_threshold=1e-2, maximum_fft_size=16384)
_MAX_PHOT_STAMP = 256


def positions_at_epoch(
    ra: np.ndarray, dec: np.ndarray, pmra: np.ndarray, pmdec: np.ndarray,
    ref_epoch: np.ndarray | float, epoch: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Propagate positions (deg) with proper motions (mas/yr; pmra includes cos dec) to ``epoch`` (Julian yr).

    Linear in time on the tangent plane; parallax is not applied (it moves the
    simulated stars by less than a few mas).
    """
    dt = epoch - np.asarray(ref_epoch, dtype=float)
    cosd = np.cos(np.radians(dec))
    return ra + pmra * dt / 3.6e6 / cosd, dec + pmdec * dt / 3.6e6


def local_jacobian(wcs_header: dict[str, Any]) -> galsim.JacobianWCS:
    """GalSim Jacobian (arcsec per pixel) of a TAN header's CD matrix.

    GalSim's local world frame has ``u`` to the west and ``v`` to the north.
    """
    cd = np.array([[wcs_header["CD1_1"], wcs_header["CD1_2"]],
                   [wcs_header["CD2_1"], wcs_header["CD2_2"]]]) * 3600.0
    return galsim.JacobianWCS(-cd[0, 0], -cd[0, 1], cd[1, 0], cd[1, 1])


def galaxy_profile(
    flux: float, bulge_fraction: float, bulge_n: float, bulge_hlr: float, bulge_e: float,
    disk_hlr: float, disk_e: float, pa: float,
) -> galsim.GSObject:
    """Bulge + disk galaxy (GalSim world units, arcsec).

    Parameters
    ----------
    flux
        Total flux, any unit (the drawn image is in that unit).
    bulge_fraction
        Fraction of the flux in the bulge.
    bulge_n
        Sersic index of the bulge.
    bulge_hlr, disk_hlr
        Circularised half-light radii, arcsec.
    bulge_e, disk_e
        Ellipticities as reduced shear ``(a - b) / (a + b)``.
    pa
        Position angle of the major axis, deg east of north.
    """
    beta = (90.0 + pa) * galsim.degrees  # u points west, v north
    parts = []
    if bulge_fraction > 0:
        bulge = galsim.Sersic(n=bulge_n, half_light_radius=bulge_hlr, trunc=10.0 * bulge_hlr,
                              flux_untruncated=False, gsparams=_GSP)
        parts.append(bulge.shear(g=bulge_e, beta=beta).withFlux(flux * bulge_fraction))
    if bulge_fraction < 1:
        disk = galsim.Exponential(half_light_radius=disk_hlr, gsparams=_GSP)
        parts.append(disk.shear(g=disk_e, beta=beta).withFlux(flux * (1.0 - bulge_fraction)))
    return parts[0] if len(parts) == 1 else galsim.Add(parts)


def draw_sources(
    fft_image: galsim.Image,
    phot_image: galsim.Image,
    psf: PSFModel,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    leff: np.ndarray,
    morph: dict[str, np.ndarray],
    rng: galsim.BaseDeviate,
    phot_threshold: float = PHOT_THRESHOLD_E,
    max_extra_noise: float = 0.0,
) -> float:
    """Draw sources into images (adding to what is there).

    Parameters
    ----------
    fft_image, phot_image
        Images (with a uniform `galsim.JacobianWCS`) receiving the FFT-drawn and
        the photon-shot sources.
    psf
        PSF model of the image.
    x, y
        Pixel positions, 1-based FITS convention.
    flux
        Total flux per source in the image's unit (electrons for photon shooting).
    leff
        Effective wavelength of each source in the band, nm (NaN: band's reference).
    morph
        ``bulge_fraction``, ``bulge_n``, ``bulge_hlr``, ``bulge_e``, ``disk_hlr``,
        ``disk_e``, ``pa`` arrays; NaN ``bulge_fraction`` means a point source.
    rng
        GalSim random deviate for photon shooting.
    phot_threshold
        Flux below which sources are photon-shot.
    max_extra_noise
        Extra variance per pixel allowed when photon shooting, image units squared:
        GalSim then shoots fewer photons of more than unit flux (as imSim does
        with a hundredth of the sky level). 0 shoots one photon per electron.

    Returns
    -------
    float
        Wall time spent inside GalSim (profile construction and drawing), s.
    """
    scale = float(np.sqrt(abs(fft_image.wcs.pixelArea())))
    t_gs = 0.0
    full = fft_image.bounds
    for k in range(x.size):
        f = float(flux[k])
        if not f > 0:
            continue
        t0 = time.perf_counter()
        p = psf.profile(float(x[k]), float(y[k]), float(leff[k]))
        bf = float(morph["bulge_fraction"][k])
        if np.isfinite(bf):
            gal = galaxy_profile(f, bf, float(morph["bulge_n"][k]), float(morph["bulge_hlr"][k]),
                                 float(morph["bulge_e"][k]), float(morph["disk_hlr"][k]),
                                 float(morph["disk_e"][k]), float(morph["pa"][k]))
            prof = galsim.Convolve(gal, p, gsparams=_GSP)
        else:
            prof = p.withFlux(f)
        # photon shooting only pays for point sources: each new Sersic profile would
        # build its own photon sampler, slower than one small FFT
        phot = f < phot_threshold and not np.isfinite(bf)
        size = prof.getGoodImageSize(scale)
        if phot:
            size = min(size, _MAX_PHOT_STAMP)
        else:
            size = min(size, 4096 if f > 1e6 else 1024)
        half = size // 2
        ix, iy = int(np.floor(x[k] + 0.5)), int(np.floor(y[k] + 0.5))
        stamp_bounds = galsim.BoundsI(ix - half, ix + half, iy - half, iy + half)
        overlap = stamp_bounds & full
        if not overlap.isDefined():
            t_gs += time.perf_counter() - t0
            continue
        # draw on the whole stamp, then add the part inside the image: GalSim's FFT
        # drawing is not defined for a centre far outside the target image
        stamp = galsim.ImageF(stamp_bounds, wcs=fft_image.wcs)
        center = galsim.PositionD(float(x[k]), float(y[k]))
        if phot:
            prof.drawImage(image=stamp, center=center, method="phot", rng=rng,
                           max_extra_noise=max_extra_noise)
            phot_image[overlap] += stamp[overlap]
        else:
            prof.drawImage(image=stamp, center=center)
            if not np.all(np.isfinite(stamp.array)):
                # Rarely (a few per 10^4 draws) GalSim's FFT returns NaNs for an
                # Airy-convolved profile; redraw the same profile by photon shooting.
                stamp.setZero()
                prof.drawImage(image=stamp, center=center, method="phot", rng=rng,
                               max_extra_noise=max_extra_noise)
            fft_image[overlap] += stamp[overlap]
        t_gs += time.perf_counter() - t0
    return t_gs


def _cosmic_rays(rng: np.random.Generator, n: int, shape: tuple[int, int], long: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys, xs, amps = [], [], []
    for _ in range(n):
        length = rng.uniform(1.0, 25.0 if long else 8.0)
        ang = rng.uniform(0.0, np.pi)
        x0, y0 = rng.uniform(0, shape[1]), rng.uniform(0, shape[0])
        steps = max(int(np.ceil(length)) * 2, 1)
        t = np.linspace(0.0, length, steps)
        xx = np.floor(x0 + t * np.cos(ang)).astype(int)
        yy = np.floor(y0 + t * np.sin(ang)).astype(int)
        ok = (xx >= 0) & (xx < shape[1]) & (yy >= 0) & (yy < shape[0])
        pix = np.unique(np.stack([yy[ok], xx[ok]]), axis=1)
        ys.append(pix[0])
        xs.append(pix[1])
        amps.append(rng.uniform(300.0, 3000.0, pix.shape[1]))
    if not ys:
        e = np.zeros(0, dtype=int)
        return e, e, np.zeros(0)
    return np.concatenate(ys), np.concatenate(xs), np.concatenate(amps)


def render_image(plan: ImagePlan, sources: dict[str, np.ndarray]) -> tuple[SimImage, dict[str, float]]:
    """Render one planned image from the truth sources.

    Parameters
    ----------
    plan
        The image's plan (pointing, PSF, systematics, seed).
    sources
        Truth columns as numpy arrays: `SOURCE_COLUMNS` plus ``flux_<band>`` (nJy)
        and ``leff_<band>`` (nm) for the plan's band.

    Returns
    -------
    image : SimImage
        The rendered image.
    stats : dict
        ``n_drawn`` (sources drawn), ``pixels``, ``galsim_s`` (time in GalSim
        drawing and noise), ``total_s`` (wall time of this call).
    """
    t_start = time.perf_counter()
    band = plan.band_info
    wcs_true = wcs_from_header(plan.wcs_true)
    wcs_written = wcs_from_header(plan.wcs_written)
    jyear = mjd_to_jyear(plan.mjd)
    ra, dec = positions_at_epoch(sources["ra"], sources["dec"], sources["pmra"], sources["pmdec"],
                                 sources["ref_epoch"], jyear)
    x, y = wcs_true.all_world2pix(ra, dec, 1)
    pad = 30 + 5.0 / band.pixel_scale
    inside = (x > -pad) & (x < plan.nx + pad) & (y > -pad) & (y < plan.ny + pad)
    zp_true_e = plan.zp_nominal_e + plan.zp_error
    flux_e = sources[f"flux_{band.name}"] * 10 ** (0.4 * (zp_true_e - AB_NJY_ZP))
    sel = np.flatnonzero(inside & (flux_e >= 1.0))
    jac = local_jacobian(plan.wcs_true)
    fft_img = galsim.ImageF(plan.nx, plan.ny, wcs=jac)
    phot_img = galsim.ImageF(plan.nx, plan.ny, wcs=jac)
    rng = galsim.BaseDeviate(plan.seed)
    morph = {k: sources[k][sel] for k in ("bulge_fraction", "bulge_n", "bulge_hlr", "bulge_e",
                                           "disk_hlr", "disk_e", "pa")}
    t_gs = draw_sources(fft_img, phot_img, plan.psf, x[sel], y[sel], flux_e[sel],
                        sources[f"leff_{band.name}"][sel], morph, rng,
                        max_extra_noise=0.01 * plan.sky_e)

    t0 = time.perf_counter()
    model = fft_img.array.astype(np.float64) + phot_img.array
    var_e = plan.sky_e + plan.read_noise**2 + np.maximum(model, 0.0)
    noise_var = galsim.Image((plan.sky_e + plan.read_noise**2 + np.maximum(fft_img.array, 0.0)).astype(np.float64))
    noisy = galsim.Image((plan.sky_e + model).astype(np.float64))
    noisy.addNoise(galsim.VariableGaussianNoise(rng, noise_var))
    t_gs += time.perf_counter() - t0
    pix = noisy.array.astype(np.float64)

    nprng = np.random.default_rng(plan.seed)
    mask = np.zeros((plan.ny, plan.nx), dtype=np.int32)
    cy, cx, camp = _cosmic_rays(nprng, plan.n_cosmic, mask.shape, long=band.survey != "lsst")
    np.add.at(pix, (cy, cx), camp)
    mask[cy, cx] |= 1 << MASK_BITS["CR"]
    for x0, y_lo, y_hi in plan.bad_columns:
        pix[y_lo:y_hi, x0] = plan.sky_e + nprng.uniform(5.0, 50.0) * np.sqrt(plan.sky_e + plan.read_noise**2)
        mask[y_lo:y_hi, x0] |= 1 << MASK_BITS["BAD"]
    sat = pix >= plan.full_well
    pix[sat] = plan.full_well
    mask[sat] |= 1 << MASK_BITS["SAT"]
    pix -= plan.sky_e

    psf_fwhm = plan.psf.fwhm((plan.nx + 1) / 2.0, (plan.ny + 1) / 2.0)
    syst = dict(plan.systematics)
    syst["psf_fwhm_arcsec"] = psf_fwhm
    syst["depth_m5"] = point_source_depth(psf_fwhm, band.pixel_scale, plan.sky_e, plan.read_noise,
                                          plan.zp_nominal_e)
    e = plan.e_per_unit
    image = SimImage(
        image_id=plan.image_id, band=plan.band, epoch=plan.epoch, mjd=plan.mjd,
        science=(pix / e).astype(np.float32),
        variance=(var_e / e**2).astype(np.float32),
        mask=mask, wcs_true=wcs_true, wcs_written=wcs_written,
        zp_true=zp_true_e - 2.5 * np.log10(e), zp_nominal=plan.zp_nominal_e - 2.5 * np.log10(e),
        psf=plan.psf, sky_level=plan.sky_e / e, image_unit=plan.image_unit, e_per_unit=e,
        saturation=(plan.full_well - plan.sky_e) / e, systematics=syst,
    )
    stats = {
        "n_drawn": float(sel.size),
        "pixels": float(plan.nx * plan.ny),
        "galsim_s": t_gs,
        "total_s": time.perf_counter() - t_start,
    }
    return image, stats
