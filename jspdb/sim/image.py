"""`SimImage`: one simulated exposure in memory, with its truth.

Science, variance and mask are numpy arrays in the survey's delivered unit
(``image_unit``). ``wcs_true`` maps pixels to the true sky; ``wcs_written`` is
what the survey's pipeline wrote (perturbed by the injected astrometric error).
``zp_true`` is the AB magnitude of a source giving 1 image unit in total;
``zp_nominal`` is what the header claims (off by the injected zero-point error).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from jspdb.sim.bands import AB_NJY_ZP, Band, get_band
from jspdb.sim.psf import PSFModel

__all__ = ["MASK_BITS", "SimImage", "wcs_from_header", "wcs_to_header"]

#: Internal mask planes (bit numbers), as in the Rubin convention; writers map them
#: to each survey's own flag bits.
MASK_BITS = {
    "BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4, "DETECTED": 5, "NO_DATA": 8, "INJECTED": 9,
}


def wcs_to_header(wcs: WCS) -> dict[str, Any]:
    """FITS WCS keywords of an astropy WCS as a plain dict (CD-matrix form)."""
    hdr = wcs.to_header()
    out: dict[str, Any] = {}
    for key in hdr:
        out[key] = hdr[key]
    # astropy writes PC + CDELT; keep CD for the conventional form
    pc = wcs.wcs.get_pc()
    cdelt = wcs.wcs.get_cdelt()
    cd = pc * cdelt[:, None]
    for k in [k for k in out if k.startswith(("PC", "CDELT"))]:
        del out[k]
    for i in range(2):
        for j in range(2):
            out[f"CD{i + 1}_{j + 1}"] = float(cd[i, j])
    return out


def wcs_from_header(header: dict[str, Any] | fits.Header) -> WCS:
    """Astropy WCS from a header dict or `astropy.io.fits.Header`."""
    hdr = fits.Header()
    for k, v in dict(header).items():
        hdr[k] = v
    return WCS(hdr)


@dataclass
class SimImage:
    """One simulated exposure.

    Attributes
    ----------
    image_id
        Unique name, e.g. ``"lsst_r_e01"``.
    band
        Band name (see `jspdb.sim.bands`).
    epoch
        Epoch number within the band, from 0.
    mjd
        Start of the exposure, MJD (UTC).
    science, variance, mask
        Pixel planes: science and variance in ``image_unit`` and its square;
        mask as int32 bits of `MASK_BITS`.
    wcs_true, wcs_written
        True and written (perturbed) pixel-to-sky transformations.
    zp_true, zp_nominal
        AB magnitude of a source giving 1 ``image_unit`` (summed over the image):
        true, and as written in the header.
    psf
        The PSF model used to render the image.
    sky_level
        Sky subtracted from the image, ``image_unit`` per pixel.
    image_unit
        Unit of the science pixels (``"adu"``, ``"electron"``, ``"DN/s"``).
    e_per_unit
        Electrons per ``image_unit`` (gain, or gain times exposure time).
    saturation
        Saturation level, ``image_unit``.
    systematics
        Injected systematics and their parameters (JSON-serialisable).
    """

    image_id: str
    band: str
    epoch: int
    mjd: float
    science: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    wcs_true: WCS
    wcs_written: WCS
    zp_true: float
    zp_nominal: float
    psf: PSFModel
    sky_level: float
    image_unit: str
    e_per_unit: float
    saturation: float
    systematics: dict[str, Any] = field(default_factory=dict)

    @property
    def band_info(self) -> Band:
        """The `Band` record of this image."""
        return get_band(self.band)

    @property
    def survey(self) -> str:
        """Survey key of this image."""
        return self.band_info.survey

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape ``(ny, nx)``."""
        return self.science.shape  # type: ignore[return-value]

    @property
    def exptime(self) -> float:
        """Exposure time, s."""
        return self.band_info.exptime

    def njy_to_units(self, flux: np.ndarray | float) -> np.ndarray:
        """Convert a flux in nJy to total ``image_unit`` using the true zero point."""
        return np.asarray(flux, dtype=float) * 10 ** (0.4 * (self.zp_true - AB_NJY_ZP))

    def units_to_njy(self, counts: np.ndarray | float, nominal: bool = False) -> np.ndarray:
        """Convert total ``image_unit`` to nJy with the true (or the nominal) zero point."""
        zp = self.zp_nominal if nominal else self.zp_true
        return np.asarray(counts, dtype=float) * 10 ** (-0.4 * (zp - AB_NJY_ZP))

    def copy(self) -> SimImage:
        """Deep copy of the pixel planes (WCS and PSF are immutable in practice and shared)."""
        return replace(
            self,
            science=self.science.copy(),
            variance=self.variance.copy(),
            mask=self.mask.copy(),
            systematics=dict(self.systematics),
        )

    def truth_record(self) -> dict[str, Any]:
        """JSON-serialisable truth of this image: everything needed to undo its systematics."""
        return {
            "image_id": self.image_id,
            "survey": self.survey,
            "band": self.band,
            "filter": self.band_info.filter,
            "epoch": self.epoch,
            "mjd": self.mjd,
            "exptime": self.exptime,
            "shape": list(self.shape),
            "image_unit": self.image_unit,
            "e_per_unit": self.e_per_unit,
            "zp_true": self.zp_true,
            "zp_nominal": self.zp_nominal,
            "sky_level": self.sky_level,
            "saturation": self.saturation,
            "wcs_true": wcs_to_header(self.wcs_true),
            "wcs_written": wcs_to_header(self.wcs_written),
            "psf": self.psf.to_dict(),
            "systematics": self.systematics,
        }
