"""PSF models: position- and colour-dependent, built from GalSim profiles.

A `PSFModel` is a small, serialisable description of one image's PSF; its
`PSFModel.profile` method returns the GalSim profile at a pixel position for a
source of a given effective wavelength in the band.

- Ground (LSST): a Kolmogorov (or Moffat) atmosphere whose FWHM scales as
  ``lambda**-0.2`` (Fried 1966; Roddier 1981), so blue sources have wider PSFs.
- Space (Euclid, Roman): an obscured-aperture Airy pattern of the telescope's
  diameter and central obscuration at the source's effective wavelength,
  convolved with a Gaussian for pointing jitter and charge diffusion, so the
  width grows with wavelength (red sources have wider PSFs).

Across the field, the PSF is dilated by ``1 + a_u u + a_v v + a_r (u^2 + v^2)``
and sheared by ``g = g0 + g_u u + g_v v`` (per component), where ``u, v`` run
from -1 to 1 across the image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import galsim
import numpy as np

__all__ = ["PSFModel", "KOLMOGOROV_INDEX", "measure_fwhm"]

#: Exponent of the wavelength dependence of Kolmogorov seeing FWHM.
KOLMOGOROV_INDEX = -0.2

_GSPARAMS = galsim.GSParams(folding_threshold=1e-2, maximum_fft_size=16384)


@dataclass(frozen=True)
class PSFModel:
    """The PSF of one image.

    Attributes
    ----------
    kind
        ``"kolmogorov"``, ``"moffat"`` (ground) or ``"airy"`` (space).
    wl_ref
        Reference wavelength, nm: the band's effective wavelength.
    fwhm_ref
        Ground only: atmospheric FWHM at ``wl_ref`` at the image centre, arcsec.
    diameter
        Space only: aperture diameter, m.
    obscuration
        Space only: linear central obscuration (fraction of the diameter).
    jitter
        Space only: Gaussian sigma of jitter and charge diffusion, arcsec.
    moffat_beta
        Moffat index (``kind="moffat"`` only).
    nx, ny
        Image size in pixels, used to normalise positions to ``u, v`` in [-1, 1].
    dilation
        ``(a_u, a_v, a_r)``: coefficients of the field-dependent dilation.
    shear
        ``(g1_0, g1_u, g1_v, g2_0, g2_u, g2_v)``: field-dependent reduced shear.
    """

    kind: str
    wl_ref: float
    fwhm_ref: float = 0.0
    diameter: float = 0.0
    obscuration: float = 0.0
    jitter: float = 0.0
    moffat_beta: float = 3.5
    nx: int = 1
    ny: int = 1
    dilation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    shear: tuple[float, float, float, float, float, float] = field(
        default=(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    )

    @property
    def ground(self) -> bool:
        """True for an atmospheric (seeing-limited) PSF."""
        return self.kind in ("kolmogorov", "moffat")

    def _uv(self, x: float, y: float) -> tuple[float, float]:
        # FITS 1-based pixel centres from 1 to n map to -1..1
        u = 2.0 * (x - 1.0) / max(self.nx - 1, 1) - 1.0
        v = 2.0 * (y - 1.0) / max(self.ny - 1, 1) - 1.0
        return u, v

    def field_factors(self, x: float, y: float) -> tuple[float, float, float]:
        """Dilation and shear ``(d, g1, g2)`` at pixel ``(x, y)`` (1-based FITS convention)."""
        u, v = self._uv(x, y)
        au, av, ar = self.dilation
        d = 1.0 + au * u + av * v + ar * (u * u + v * v)
        s = self.shear
        return d, s[0] + s[1] * u + s[2] * v, s[3] + s[4] * u + s[5] * v

    def profile(self, x: float, y: float, wl: float | None = None) -> galsim.GSObject:
        """GalSim PSF profile (world units arcsec) at pixel ``(x, y)`` for effective wavelength ``wl`` (nm).

        ``wl`` defaults to the band's reference wavelength.
        """
        wl = self.wl_ref if wl is None or not np.isfinite(wl) else float(wl)
        d, g1, g2 = self.field_factors(x, y)
        ratio = wl / self.wl_ref
        if self.ground:
            # Kolmogorov (and our Moffat) profiles are self-similar: dilate the reference one
            base = self._base().dilate(ratio**KOLMOGOROV_INDEX)
        else:
            optics = self._base().dilate(ratio)  # diffraction scales with wavelength
            base = galsim.Convolve(optics, galsim.Gaussian(sigma=self.jitter, gsparams=_GSPARAMS))
        return base.dilate(d).shear(g1=g1, g2=g2)

    def _base(self) -> galsim.GSObject:
        # one reference-wavelength profile per model: GalSim caches its photon-shooting
        # and Fourier tables, which would be rebuilt for every new size otherwise
        return _base_profile(self.kind, self.fwhm_ref, self.moffat_beta, self.wl_ref,
                             self.diameter, self.obscuration)

    def fwhm(self, x: float, y: float, wl: float | None = None, pixel_scale: float = 0.0) -> float:
        """FWHM (arcsec) of the PSF at ``(x, y)`` for wavelength ``wl`` (nm).

        With ``pixel_scale`` > 0, the FWHM of the PSF convolved with that pixel (the
        effective PSF seen in an image), measured the same way as on a star:
        see `measure_fwhm`.
        """
        prof = self.profile(x, y, wl)
        if pixel_scale > 0:
            img = prof.drawImage(nx=65, ny=65, scale=pixel_scale)
            return measure_fwhm(img.array, pixel_scale)
        img = prof.drawImage(nx=257, ny=257, scale=0.01, method="no_pixel")
        return float(img.calculateFWHM())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict; `from_dict` inverts it."""
        out = asdict(self)
        out["dilation"] = list(self.dilation)
        out["shear"] = list(self.shear)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PSFModel:
        """Rebuild a `PSFModel` from `to_dict` output."""
        d = dict(data)
        d["dilation"] = tuple(d["dilation"])
        d["shear"] = tuple(d["shear"])
        return cls(**d)


@lru_cache(maxsize=64)
def _base_profile(kind: str, fwhm: float, beta: float, wl: float, diameter: float,
                  obscuration: float) -> galsim.GSObject:
    if kind == "kolmogorov":
        return galsim.Kolmogorov(fwhm=fwhm, gsparams=_GSPARAMS)
    if kind == "moffat":
        return galsim.Moffat(beta=beta, fwhm=fwhm, gsparams=_GSPARAMS)
    lam_over_diam = wl * 1e-9 / diameter * 206264.80624709636
    return galsim.Airy(lam_over_diam=lam_over_diam, obscuration=obscuration, gsparams=_GSPARAMS)


def measure_fwhm(stamp: np.ndarray, pixel_scale: float) -> float:
    """FWHM (arcsec) of a star from its adaptive second moments (HSM).

    Returns ``2.3548 * sigma`` where ``sigma`` is the determinant radius of the
    adaptive Gaussian moments; this equals the FWHM for a Gaussian and is a
    consistent width estimator for other profiles when model and data are
    measured the same way. NaN if the moments fail.
    """
    img = galsim.Image(np.ascontiguousarray(stamp, dtype=np.float64), scale=pixel_scale)
    res = img.FindAdaptiveMom(strict=False)
    if res.moments_status != 0:
        return float("nan")
    return float(2.3548200450309493 * res.moments_sigma * pixel_scale)
