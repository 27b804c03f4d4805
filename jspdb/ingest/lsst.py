"""Rubin/LSST: calexp-style multi-extension FITS (IMAGE, MASK, VARIANCE).

The Rubin science pipelines write an empty primary HDU holding the exposure
cards, then ``IMAGE``, ``MASK`` and ``VARIANCE`` extensions. Mask planes are
named in ``MP_<PLANE>`` cards of the MASK header, whose values are bit
numbers (they can differ between files, so they are read every time).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from astropy.io import fits

from jspdb.errors import IngestError
from jspdb.ingest.adapters import (
    ImageRecord,
    PlaneRef,
    Planes,
    SurveyAdapter,
    check_science,
    header_to_json,
    open_fits,
    register_adapter,
)
from jspdb.ingest.fitsutil import exposure_times, find_hdu, float_card, science_array
from jspdb.ingest.masks import translate_bits
from jspdb.ingest.wcs import validated_wcs

__all__ = ["RUBIN_PLANES", "RubinAdapter", "rubin_mask_mapping"]

#: Rubin mask plane -> jspdb flag (None: not a defect, e.g. detection footprints).
RUBIN_PLANES: dict[str, str | None] = {
    "BAD": "BAD", "SAT": "SAT", "CR": "CR", "NO_DATA": "NO_DATA", "INTRP": "INTRP",
    "SUSPECT": "SUSPECT", "EDGE": "EDGE", "UNMASKEDNAN": "BAD", "CROSSTALK": "SUSPECT",
    "DETECTED": None, "DETECTED_NEGATIVE": None, "CLIPPED": None, "NOT_DEBLENDED": None,
    "INJECTED": None, "INJECTED_TEMPLATE": None, "STREAK": "SUSPECT", "VIGNETTED": "NO_DATA",
}
_BANDS = ("u", "g", "r", "i", "z", "y")


def rubin_mask_mapping(mask_header: fits.Header) -> dict[int, str | None]:
    """Bit value -> jspdb flag, from the ``MP_*`` cards of a Rubin MASK header."""
    mapping: dict[int, str | None] = {}
    for key in mask_header:
        if key.startswith("MP_"):
            plane = key[3:]
            mapping[1 << int(mask_header[key])] = RUBIN_PLANES.get(plane, "OTHER")
    return mapping


@register_adapter
class RubinAdapter(SurveyAdapter):
    """LSST images from the Rubin science pipelines (calexp / visit_image)."""

    name = "lsst"

    def identify(self, path: Path, primary: fits.Header | None) -> bool:
        if primary is None:
            return False
        tel = str(primary.get("TELESCOP", "")).upper()
        ins = str(primary.get("INSTRUME", "")).upper()
        return "RUBIN" in tel or "LSST" in tel or ins.startswith("LSST")

    def _band(self, path: Path, primary: fits.Header) -> str:
        band = primary.get("BAND")
        if not band:
            band = str(primary.get("FILTER", "")).split("_")[0].split("~")[0]
        band = str(band).strip()
        if band not in _BANDS:
            raise IngestError(f"{path}: unknown LSST filter {primary.get('FILTER')!r} "
                              f"(known bands: {' '.join(_BANDS)})")
        return band

    def describe(self, path: Path) -> ImageRecord:
        with open_fits(path) as hdul:
            primary = hdul[0].header
            i_img = find_hdu(hdul, "IMAGE")
            if i_img is None:
                raise IngestError(f"{path}: Rubin file without an IMAGE extension")
            sci_hdr = hdul[i_img].header
            ny, nx = check_science(science_array(hdul, i_img, path), path)
            band = self._band(path, primary)
            w = validated_wcs(sci_hdr, (ny, nx), str(path))
            t0, t1, exptime = exposure_times(path, primary, sci_hdr)
            zp = float_card(primary, keys=("MAGZERO", "ZEROPT"))
            if zp is None:
                f0 = float_card(primary, keys=("FLUXMAG0",))
                zp = 2.5 * math.log10(f0) if f0 and f0 > 0 else None
            planes = [PlaneRef("science", Path(path), "IMAGE", "science")]
            i_var, i_msk = find_hdu(hdul, "VARIANCE"), find_hdu(hdul, "MASK")
            if i_var is not None:
                planes.append(PlaneRef("variance", Path(path), "VARIANCE", "variance"))
            if i_msk is not None:
                planes.append(PlaneRef("mask", Path(path), "MASK", "rubin-mask"))
            visit, det = primary.get("VISIT"), primary.get("DETECTOR")
            obs_id = f"{visit}-{det}" if visit is not None else Path(path).name
            return ImageRecord(
                path=Path(path), survey="lsst", band=band, kind="single_epoch", obs_id=str(obs_id),
                naxis1=nx, naxis2=ny, wcs=w, t_min_mjd=t0, t_max_mjd=t1, exptime_s=exptime,
                zeropoint_mag=zp, saturation=float_card(primary, sci_hdr, keys=("SATURATE",)),
                gain=float_card(primary, keys=("GAIN",)),
                psf_fwhm_arcsec=float_card(primary, keys=("SEEING", "PSF_FWHM")),
                header=header_to_json(primary, sci_hdr), planes=planes,
            )

    def read_planes(self, path: Path) -> Planes:
        with open_fits(path) as hdul:
            i_img, i_var, i_msk = (find_hdu(hdul, n) for n in ("IMAGE", "VARIANCE", "MASK"))
            sci = science_array(hdul, i_img, path)
            var = science_array(hdul, i_var, path) if i_var is not None else np.full_like(sci, np.nan)
            if i_msk is not None:
                mask = translate_bits(hdul[i_msk].data, rubin_mask_mapping(hdul[i_msk].header))
            else:
                mask = np.zeros(sci.shape, dtype=np.int32)
            w = validated_wcs(hdul[i_img].header, sci.shape, str(path))
        return Planes(science=sci, variance=var, mask=mask, wcs=w)
