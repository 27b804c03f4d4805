"""Surveys and bands the simulator knows: wavelengths, pixels, zero points, sky, detectors.

Every band is one `Band` record; every survey is one `Survey` record holding its
bands. Numbers are nominal values from the surveys' public descriptions:

- LSST: throughputs ``total_<b>.dat`` from lsst/throughputs (shipped with GalSim),
  collecting area of a 6.423 m effective aperture, 30 s visits (2 x 15 s snaps),
  dark-sky brightness per band from Ivezic et al. (2019, ApJ 873, 111, Table 2).
- Euclid: VIS 550-900 nm (Cropper et al. 2016), NISP Y/J/H edges from
  Euclid Collaboration: Schirmer et al. (2022, A&A 662, A92); top-hat
  throughputs, 1.2 m primary, exposure times of the Euclid Wide Survey
  (566 s VIS, 87.2 s NISP) and a zodiacal sky of ~22.3 (VIS) / 22.0 (NISP)
  mag arcsec^-2 at moderate ecliptic latitude.
- Roman: WFI bandpasses and collecting area from ``galsim.roman``, 139.8 s
  exposures, sky (zodiacal + thermal) of ~22.5 mag arcsec^-2.

The *zero point* of a band, ``zp_e_per_s``, is the AB magnitude of a source that
gives 1 electron per second in the detector, computed from the throughput and
the collecting area. Fluxes are in nJy throughout: ``m_AB = 31.4 - 2.5 log10(f/nJy)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import numpy as np

from jspdb.errors import SimulationError

__all__ = [
    "AB_NJY_ZP",
    "BANDS",
    "SURVEYS",
    "Band",
    "Survey",
    "all_bands",
    "get_band",
    "get_survey",
    "njy_to_mag",
    "mag_to_njy",
    "point_source_depth",
    "throughput",
    "WAVELENGTH_GRID_NM",
]

#: AB magnitude of a 1 nJy source.
AB_NJY_ZP = 31.4

#: Common wavelength grid (nm) on which SEDs and throughputs are integrated.
WAVELENGTH_GRID_NM = np.arange(300.0, 2200.0 + 1e-9, 4.0)


@dataclass(frozen=True)
class Band:
    """One photometric band of one survey.

    Attributes
    ----------
    name
        Unique band name used in column names, e.g. ``"lsst_r"``, ``"euclid_vis"``.
    survey
        Survey key: ``"lsst"``, ``"euclid"`` or ``"roman"``.
    filter
        Filter name as the survey writes it in its headers (``"r"``, ``"VIS"``, ``"F158"``).
    instrument
        Instrument name written in headers (``"LSSTCam"``, ``"VIS"``, ``"NISP"``, ``"WFI"``).
    wl_min, wl_eff, wl_max
        Blue edge, effective (photon-weighted flat-spectrum) and red edge wavelengths, nm.
    pixel_scale
        Detector pixel scale, arcsec per pixel.
    zp_e_per_s
        AB magnitude of a source giving 1 e- s^-1.
    sky_mag
        Sky surface brightness, AB mag arcsec^-2.
    exptime
        Exposure time of one image, s.
    read_noise
        Read noise, e- per pixel.
    gain
        Gain, e- per ADU (or per DN).
    full_well
        Saturation level, e- per pixel.
    cr_rate
        Cosmic-ray hits per square arcmin per second of exposure (events surviving
        in the delivered image).
    """

    name: str
    survey: str
    filter: str
    instrument: str
    wl_min: float
    wl_eff: float
    wl_max: float
    pixel_scale: float
    zp_e_per_s: float
    sky_mag: float
    exptime: float
    read_noise: float
    gain: float
    full_well: float
    cr_rate: float

    @property
    def sky_e_per_pixel(self) -> float:
        """Sky level in one exposure, e- per pixel."""
        return float(
            10 ** (-0.4 * (self.sky_mag - self.zp_e_per_s)) * self.exptime * self.pixel_scale**2
        )

    @property
    def zp_exposure(self) -> float:
        """AB magnitude of a source giving 1 e- in one exposure."""
        return float(self.zp_e_per_s + 2.5 * np.log10(self.exptime))


@dataclass(frozen=True)
class Survey:
    """One survey: telescope, PSF family, bands and image delivery defaults.

    Attributes
    ----------
    name
        Survey key (``"lsst"``, ``"euclid"``, ``"roman"``).
    telescope
        Telescope name written in headers.
    ground
        True for a ground-based survey (atmospheric seeing PSF).
    diameter
        Primary mirror diameter, m.
    obscuration
        Linear central obscuration, fraction of the diameter.
    jitter
        Gaussian sigma of pointing jitter + detector charge diffusion for space
        PSFs, arcsec (0 for the ground).
    epochs
        Default number of epochs per band.
    mjd_start, mjd_end
        Range of observation dates drawn for this survey, MJD (UTC).
    image_unit
        Unit of the delivered science pixels: ``"adu"``, ``"electron"`` or ``"DN/s"``.
    ref_band
        Band used to count detectable sources for the beams-per-source figure.
    bands
        Band names of this survey, blue to red.
    """

    name: str
    telescope: str
    ground: bool
    diameter: float
    obscuration: float
    jitter: float
    epochs: int
    mjd_start: float
    mjd_end: float
    image_unit: str
    ref_band: str
    bands: tuple[str, ...]


_SHARE = None


def _galsim_share() -> str:
    global _SHARE
    if _SHARE is None:
        import galsim

        _SHARE = galsim.meta_data.share_dir
    return _SHARE


def _lsst_area_cm2() -> float:
    return float(np.pi * (642.3 / 2.0) ** 2)


def _euclid_area_cm2() -> float:
    return float(np.pi * 60.0**2 * (1.0 - 0.3**2))


@cache
def _lsst_bandpass(filt: str):  # -> galsim.Bandpass
    import galsim

    path = os.path.join(_galsim_share(), "bandpasses", f"LSST_{filt}.dat")
    return galsim.Bandpass(path, "nm").thin(rel_err=1e-4).withZeropoint("AB")


@cache
def _roman_bandpasses() -> dict:
    import galsim.roman

    return galsim.roman.getBandpasses(AB_zeropoint=True)


_ROMAN_GALSIM_NAME = {
    "F062": "R062",
    "F087": "Z087",
    "F106": "Y106",
    "F129": "J129",
    "F158": "H158",
    "F184": "F184",
}

_TOPHAT_THROUGHPUT = {"VIS": 0.72, "Y": 0.65, "J": 0.68, "H": 0.70}
_EUCLID_EDGES = {"VIS": (550.0, 900.0), "Y": (949.6, 1212.3), "J": (1167.6, 1567.0), "H": (1521.5, 2021.4)}


def _tophat_zp(lo: float, hi: float, eff: float, area_cm2: float) -> float:
    """AB magnitude giving 1 e-/s through a top-hat band of efficiency ``eff``."""
    # photon rate of a flat f_nu = 3631 Jy source: N = A * eff * f_nu / h * ln(hi/lo)
    h_erg_s = 6.62607015e-27
    fnu_cgs = 3631e-23
    rate = area_cm2 * eff * fnu_cgs / h_erg_s * np.log(hi / lo)
    return float(2.5 * np.log10(rate))


def _build() -> tuple[dict[str, Band], dict[str, Survey]]:
    bands: dict[str, Band] = {}
    # LSST (Ivezic et al. 2019 Table 2 dark-sky brightness).
    lsst_sky = {"u": 22.96, "g": 22.26, "r": 21.20, "i": 20.48, "z": 19.60, "y": 18.61}
    for f, sky in lsst_sky.items():
        bp = _lsst_bandpass(f)
        zp = bp.zeropoint + 2.5 * np.log10(_lsst_area_cm2())
        bands[f"lsst_{f}"] = Band(
            name=f"lsst_{f}", survey="lsst", filter=f, instrument="LSSTCam",
            wl_min=float(bp.blue_limit), wl_eff=float(bp.effective_wavelength),
            wl_max=float(bp.red_limit), pixel_scale=0.2, zp_e_per_s=float(zp),
            sky_mag=sky, exptime=30.0, read_noise=6.0, gain=1.6, full_well=1.0e5,
            cr_rate=0.02,
        )
    # Euclid VIS and NISP (top-hat bands).
    for f, (lo, hi) in _EUCLID_EDGES.items():
        vis = f == "VIS"
        eff = float(np.sqrt(lo * hi))
        bands[f"euclid_{f.lower()}"] = Band(
            name=f"euclid_{f.lower()}", survey="euclid", filter=f,
            instrument="VIS" if vis else "NISP", wl_min=lo, wl_eff=eff, wl_max=hi,
            pixel_scale=0.1 if vis else 0.3,
            zp_e_per_s=_tophat_zp(lo, hi, _TOPHAT_THROUGHPUT[f], _euclid_area_cm2()),
            sky_mag=22.3 if vis else 22.0, exptime=566.0 if vis else 87.2,
            read_noise=4.5 if vis else 6.0, gain=3.48 if vis else 2.0,
            full_well=2.0e5 if vis else 1.2e5, cr_rate=0.02 if vis else 0.005,
        )
    # Roman WFI (galsim.roman bandpasses and collecting area).
    import galsim.roman

    rbp = _roman_bandpasses()
    for f, gname in _ROMAN_GALSIM_NAME.items():
        bp = rbp[gname]
        zp = bp.zeropoint + 2.5 * np.log10(galsim.roman.collecting_area)
        bands[f"roman_{f.lower()}"] = Band(
            name=f"roman_{f.lower()}", survey="roman", filter=f, instrument="WFI",
            wl_min=float(bp.blue_limit), wl_eff=float(bp.effective_wavelength),
            wl_max=float(bp.red_limit), pixel_scale=0.11, zp_e_per_s=float(zp),
            sky_mag=22.5, exptime=139.8, read_noise=8.5, gain=1.0, full_well=1.0e5,
            cr_rate=0.002,
        )
    surveys = {
        "lsst": Survey(
            name="lsst", telescope="Rubin:Simonyi", ground=True, diameter=8.36,
            obscuration=0.61, jitter=0.0, epochs=3, mjd_start=61040.0, mjd_end=62500.0,
            image_unit="adu", ref_band="lsst_r",
            bands=tuple(f"lsst_{f}" for f in "ugrizy"),
        ),
        "euclid": Survey(
            name="euclid", telescope="EUCLID", ground=False, diameter=1.2,
            obscuration=0.3, jitter=0.055, epochs=1, mjd_start=60300.0, mjd_end=62000.0,
            image_unit="electron", ref_band="euclid_vis",
            bands=("euclid_vis", "euclid_y", "euclid_j", "euclid_h"),
        ),
        "roman": Survey(
            name="roman", telescope="ROMAN", ground=False, diameter=2.36,
            obscuration=0.32, jitter=0.012, epochs=1, mjd_start=61500.0, mjd_end=62500.0,
            image_unit="DN/s", ref_band="roman_f158",
            bands=tuple(f"roman_{f.lower()}" for f in _ROMAN_GALSIM_NAME),
        ),
    }
    return bands, surveys


BANDS, SURVEYS = _build()


def get_band(name: str) -> Band:
    """Return the `Band` called ``name`` (e.g. ``"lsst_r"``); raise `SimulationError` if unknown."""
    try:
        return BANDS[name]
    except KeyError:
        raise SimulationError(f"unknown band {name!r}; known: {', '.join(BANDS)}") from None


def get_survey(name: str) -> Survey:
    """Return the `Survey` called ``name``; raise `SimulationError` if unknown."""
    try:
        return SURVEYS[name.lower()]
    except KeyError:
        raise SimulationError(f"unknown survey {name!r}; known: {', '.join(SURVEYS)}") from None


def all_bands() -> list[Band]:
    """All bands of all surveys, in a fixed order (survey, then blue to red)."""
    return [BANDS[b] for s in SURVEYS.values() for b in s.bands]


@cache
def _throughput_on_grid(name: str) -> np.ndarray:
    band = get_band(name)
    wl = WAVELENGTH_GRID_NM
    if band.survey == "lsst":
        bp = _lsst_bandpass(band.filter)
        inside = (wl >= bp.blue_limit) & (wl <= bp.red_limit)
        out = np.zeros_like(wl)
        out[inside] = bp(wl[inside])
        return out
    if band.survey == "roman":
        bp = _roman_bandpasses()[_ROMAN_GALSIM_NAME[band.filter]]
        inside = (wl >= bp.blue_limit) & (wl <= bp.red_limit)
        out = np.zeros_like(wl)
        out[inside] = bp(wl[inside])
        return out
    return np.where((wl >= band.wl_min) & (wl <= band.wl_max), _TOPHAT_THROUGHPUT[band.filter], 0.0)


def throughput(name: str) -> np.ndarray:
    """Throughput of band ``name`` sampled on `WAVELENGTH_GRID_NM` (dimensionless, 0-1)."""
    return _throughput_on_grid(name).copy()


def gaia_g_throughput() -> np.ndarray:
    """Approximate Gaia G passband on `WAVELENGTH_GRID_NM`: 330-1050 nm with soft edges.

    A smooth stand-in for the DR3 passband (Riello et al. 2021), used only to
    assign G magnitudes to stars for the reference-catalog cut and errors.
    """
    wl = WAVELENGTH_GRID_NM
    rise = 1.0 / (1.0 + np.exp(-(wl - 400.0) / 20.0))
    fall = 1.0 / (1.0 + np.exp((wl - 900.0) / 40.0))
    return 0.7 * rise * fall


def njy_to_mag(flux: np.ndarray | float) -> np.ndarray:
    """AB magnitude of a flux in nJy (NaN for non-positive fluxes)."""
    f = np.asarray(flux, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, AB_NJY_ZP - 2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)


def mag_to_njy(mag: np.ndarray | float) -> np.ndarray:
    """Flux in nJy of an AB magnitude."""
    return 10 ** (-0.4 * (np.asarray(mag, dtype=float) - AB_NJY_ZP))


def point_source_depth(
    fwhm: float, pixel_scale: float, sky_e: float, read_noise: float, zp_e: float, nsigma: float = 5.0
) -> float:
    """Point-source detection limit of one image, AB mag.

    Background-limited optimal (PSF-weighted) photometry with a Gaussian PSF:
    ``n_eff = 4 pi (sigma_psf^2 + p^2 / 12) / p^2`` pixels.

    Parameters
    ----------
    fwhm
        PSF FWHM, arcsec.
    pixel_scale
        Pixel scale, arcsec.
    sky_e, read_noise
        Sky per pixel and read noise, e-.
    zp_e
        AB magnitude giving 1 e- in the exposure.
    nsigma
        Detection threshold in sigma.
    """
    sigma = fwhm / 2.3548200450309493
    n_eff = 4.0 * np.pi * (sigma**2 + pixel_scale**2 / 12.0) / pixel_scale**2
    flux_e = nsigma * np.sqrt((sky_e + read_noise**2) * n_eff)
    return float(zp_e - 2.5 * np.log10(flux_e))
