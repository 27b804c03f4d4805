"""Observing plan and injected survey systematics, one `ImagePlan` per image.

Every image gets, from its own random stream (so a field is reproducible
whatever order images are rendered in):

- a pointing: the field centre dithered by up to 3 arcsec and rotated (LSST and
  Roman up to 5 deg, Euclid up to 0.5 deg); this is the *true* WCS;
- an astrometric error of the *written* WCS: an offset of 0.05-0.2 arcsec in a
  random direction at the reference pixel, a rotation of up to 20 arcsec
  (1e-4 rad) and a scale error of up to 1e-4;
- a zero-point error, Gaussian with 0.03 mag rms: the pixels are rendered
  with ``zp_nominal + zp_error`` while the header states ``zp_nominal``;
- a PSF: seeing 0.6-1.0 arcsec (ground) or the diffraction-limited optics
  (space), with a field-dependent dilation (a few per cent) and shear (~0.01-0.02);
- cosmic rays (a Poisson number from the band's rate), one to three bad
  columns, and saturation at the detector's full well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.wcs import WCS

from jspdb.sim.bands import Band, get_band, get_survey
from jspdb.sim.image import wcs_to_header
from jspdb.sim.psf import PSFModel
from jspdb.sim.sky import tangent_to_sky
from jspdb.sim.spec import FieldSpec

__all__ = ["ImagePlan", "make_tan_wcs", "perturb_wcs", "plan_images", "mjd_to_jyear"]


def mjd_to_jyear(mjd: float) -> float:
    """Julian epoch (years) of an MJD."""
    return 2000.0 + (mjd - 51544.5) / 365.25


def make_tan_wcs(
    ra: float, dec: float, nx: int, ny: int, scale: float, rotation_deg: float
) -> WCS:
    """A TAN WCS centred on (ra, dec) deg with ``scale`` arcsec/pixel.

    ``rotation_deg`` is the position angle of the +y pixel axis, deg east of north;
    at 0, north is up and east is left (the usual sky orientation).
    """
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    s = scale / 3600.0
    t = np.radians(rotation_deg)
    w.wcs.cd = np.array([[-s * np.cos(t), s * np.sin(t)], [s * np.sin(t), s * np.cos(t)]])
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    w.pixel_shape = (nx, ny)
    return w


def perturb_wcs(
    wcs: WCS, offset_ra: float, offset_dec: float, rotation: float, scale_error: float
) -> WCS:
    """The WCS a survey pipeline would write, given the true one and its errors.

    Parameters
    ----------
    wcs
        True WCS (TAN, CD matrix).
    offset_ra, offset_dec
        Offset of the written position from the truth at the reference pixel,
        arcsec (``offset_ra`` is delta alpha times cos delta).
    rotation
        Rotation of the written WCS about the reference pixel, arcsec of arc (angle).
    scale_error
        Fractional error of the written pixel scale.
    """
    out = wcs.deepcopy()
    ra0, dec0 = wcs.wcs.crval
    out.wcs.crval = [
        ra0 + offset_ra / 3600.0 / np.cos(np.radians(dec0)),
        dec0 + offset_dec / 3600.0,
    ]
    phi = np.radians(rotation / 3600.0)
    rot = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    cd = wcs.wcs.cd if wcs.wcs.has_cd() else wcs.wcs.get_pc() * wcs.wcs.get_cdelt()[:, None]
    out.wcs.cd = (1.0 + scale_error) * rot @ cd
    out.wcs.set()
    return out


@dataclass
class ImagePlan:
    """Everything needed to render one image (picklable, sent to worker processes).

    Attributes
    ----------
    image_id, band, epoch, mjd
        Identity and time (MJD, UTC) of the exposure.
    nx, ny
        Image size, pixels.
    wcs_true, wcs_written
        FITS WCS header dicts.
    zp_nominal_e, zp_error
        AB magnitude giving 1 e- in the exposure as written, and the injected
        error (true = nominal + error), mag.
    psf
        PSF model.
    sky_e, read_noise, full_well
        Sky level (e- per pixel), read noise (e-), saturation (e-).
    e_per_unit, image_unit
        Conversion from electrons to the delivered unit.
    n_cosmic, bad_columns
        Cosmic rays to add; bad columns as ``(x0, y_start, y_stop)`` (0-based).
    seed
        Seed of this image's random stream.
    systematics
        Record of the injected systematics for the truth file.
    """

    image_id: str
    band: str
    epoch: int
    mjd: float
    nx: int
    ny: int
    wcs_true: dict[str, Any]
    wcs_written: dict[str, Any]
    zp_nominal_e: float
    zp_error: float
    psf: PSFModel
    sky_e: float
    read_noise: float
    full_well: float
    e_per_unit: float
    image_unit: str
    n_cosmic: int
    bad_columns: list[tuple[int, int, int]]
    seed: int
    systematics: dict[str, Any] = field(default_factory=dict)

    @property
    def band_info(self) -> Band:
        """The `Band` record."""
        return get_band(self.band)


def _e_per_unit(band: Band, unit: str) -> float:
    if unit == "adu":
        return band.gain
    if unit == "DN/s":
        return band.gain * band.exptime
    return 1.0


def plan_images(spec: FieldSpec) -> list[ImagePlan]:
    """Plan every image of a field: pointing, time, PSF and systematics.

    Parameters
    ----------
    spec
        The field request.

    Returns
    -------
    list of ImagePlan
        In survey, band, epoch order.
    """
    plans: list[ImagePlan] = []
    size_arcsec = spec.size_arcmin * 60.0
    for sname in spec.surveys:
        survey = get_survey(sname)
        n_epochs = spec.lsst_epochs if sname == "lsst" else survey.epochs
        for b_index, bname in enumerate(survey.bands):
            band = get_band(bname)
            for epoch in range(n_epochs):
                ss = np.random.SeedSequence([spec.seed, 3, _survey_code(sname), b_index, epoch])
                rng = np.random.default_rng(ss)
                image_seed = int(rng.integers(1, 2**31 - 1))
                n = int(np.ceil(size_arcsec / band.pixel_scale))
                max_rot = 0.5 if sname == "euclid" else 5.0
                rot = float(rng.uniform(-max_rot, max_rot))
                dxi, deta = rng.uniform(-3.0, 3.0, 2) / 3600.0
                ra_c, dec_c = tangent_to_sky(np.array([dxi]), np.array([deta]), spec.ra, spec.dec)
                wcs_true = make_tan_wcs(float(ra_c[0]), float(dec_c[0]), n, n, band.pixel_scale, rot)
                off = float(rng.uniform(0.05, 0.2))
                ang = float(rng.uniform(0.0, 2.0 * np.pi))
                off_ra, off_dec = off * np.sin(ang), off * np.cos(ang)
                rotation = float(rng.uniform(-20.0, 20.0))
                scale_error = float(rng.uniform(-1e-4, 1e-4))
                wcs_written = perturb_wcs(wcs_true, off_ra, off_dec, rotation, scale_error)
                zp_error = float(rng.normal(0.0, 0.03))
                mjd = float(rng.uniform(survey.mjd_start, survey.mjd_end))
                if survey.ground:
                    seeing = float(rng.uniform(0.6, 1.0))
                    dil = (rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), rng.uniform(0.0, 0.04))
                    shear = (rng.normal(0, 0.01), rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02),
                             rng.normal(0, 0.01), rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02))
                    psf = PSFModel(kind=spec.ground_psf, wl_ref=band.wl_eff, fwhm_ref=seeing, nx=n, ny=n,
                                   dilation=tuple(float(v) for v in dil),
                                   shear=tuple(float(v) for v in shear))
                else:
                    dil = (rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02), rng.uniform(0.0, 0.02))
                    shear = (rng.normal(0, 0.005), rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01),
                             rng.normal(0, 0.005), rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01))
                    psf = PSFModel(kind="airy", wl_ref=band.wl_eff, diameter=survey.diameter,
                                   obscuration=survey.obscuration, jitter=survey.jitter, nx=n, ny=n,
                                   dilation=tuple(float(v) for v in dil),
                                   shear=tuple(float(v) for v in shear))
                area_arcmin2 = (n * band.pixel_scale / 60.0) ** 2
                n_cosmic = int(rng.poisson(band.cr_rate * area_arcmin2 * band.exptime))
                n_bad = 1 + int(rng.poisson(0.7))
                bad = []
                for _ in range(n_bad):
                    x0 = int(rng.integers(0, n))
                    y0 = int(rng.integers(0, n // 2))
                    bad.append((x0, y0, int(rng.integers(y0 + n // 4, n + 1))))
                unit = survey.image_unit
                image_id = f"{bname}_e{epoch:02d}"
                plans.append(
                    ImagePlan(
                        image_id=image_id, band=bname, epoch=epoch, mjd=mjd, nx=n, ny=n,
                        wcs_true=wcs_to_header(wcs_true), wcs_written=wcs_to_header(wcs_written),
                        zp_nominal_e=band.zp_exposure, zp_error=zp_error, psf=psf,
                        sky_e=band.sky_e_per_pixel, read_noise=band.read_noise,
                        full_well=band.full_well, e_per_unit=_e_per_unit(band, unit),
                        image_unit=unit, n_cosmic=n_cosmic, bad_columns=bad, seed=image_seed,
                        systematics={
                            "astrometric_offset_ra_arcsec": off_ra,
                            "astrometric_offset_dec_arcsec": off_dec,
                            "astrometric_rotation_arcsec": rotation,
                            "astrometric_scale_error": scale_error,
                            "pointing_rotation_deg": rot,
                            "zp_error_mag": zp_error,
                            "seeing_fwhm_arcsec": psf.fwhm_ref if survey.ground else None,
                            "n_cosmic_rays": n_cosmic,
                            "bad_columns": [list(b) for b in bad],
                        },
                    )
                )
    return plans


def _survey_code(name: str) -> int:
    return {"lsst": 1, "euclid": 2, "roman": 3}[name]
