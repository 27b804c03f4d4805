"""Euclid: science, RMS and flag planes, in one MEF or as separate MER files.

Calibrated frames carry ``SCI``, ``RMS`` and ``FLG`` extensions. MER mosaics
ship each plane as its own file, named like
``EUC_MER_BGSUB-MOSAIC-VIS_TILE<id>-...fits`` (science),
``EUC_MER_MOSAIC-VIS-RMS_TILE<id>-...fits`` and
``EUC_MER_MOSAIC-VIS-FLAG_TILE<id>-...fits``; the RMS and FLAG files are
planes of the science image, not images of their own. RMS becomes variance
(squared); flag bits become jspdb mask bits.
"""

from __future__ import annotations

import re
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

__all__ = ["EUCLID_FLAG_NAMES", "EuclidAdapter"]

#: Euclid flag name -> jspdb flag. Values come from FLAG_<NAME> cards when the
#: file has them, else from `_DEFAULT_FLAG_VALUES` (VIS flag map bits).
EUCLID_FLAG_NAMES: dict[str, str | None] = {
    "INVALID": "BAD", "HOT": "BAD", "COLD": "BAD", "SAT": "SAT", "COSMIC": "CR",
    "GHOST": "SUSPECT", "OVERLAP": None, "NO_DATA": "NO_DATA", "EXTOBJ": None,
}
_DEFAULT_FLAG_VALUES = {"INVALID": 1, "HOT": 2, "COLD": 4, "SAT": 8, "COSMIC": 16, "GHOST": 32}
_FILTERS = {"VIS": "VIS", "NIR_Y": "Y", "NIR_J": "J", "NIR_H": "H", "Y": "Y", "J": "J", "H": "H"}
_MER_SCI = re.compile(r"^EUC_MER_BGSUB-MOSAIC-(?P<band>[A-Z0-9_]+)_TILE(?P<tile>\d+)")
_MER_PLANE = re.compile(r"^EUC_MER_MOSAIC-(?P<band>[A-Z0-9_]+)-(?P<plane>RMS|FLAG)_TILE(?P<tile>\d+)")


def _flag_mapping(header: fits.Header) -> dict[int, str | None]:
    values = {k[5:]: int(header[k]) for k in header if k.startswith("FLAG_")} or _DEFAULT_FLAG_VALUES
    return {v: EUCLID_FLAG_NAMES.get(name, "OTHER") for name, v in values.items()}


@register_adapter
class EuclidAdapter(SurveyAdapter):
    """Euclid VIS and NISP images (calibrated frames and MER mosaics)."""

    name = "euclid"

    def identify(self, path: Path, primary: fits.Header | None) -> bool:
        return primary is not None and str(primary.get("TELESCOP", "")).upper().startswith("EUCLID")

    def _mer_companion(self, path: Path, plane: str) -> Path | None:
        m = _MER_SCI.match(path.name)
        if not m:
            return None
        hits = sorted(path.parent.glob(f"EUC_MER_MOSAIC-{m['band']}-{plane}_TILE{m['tile']}*"))
        return hits[0] if hits else None

    def companions(self, path: Path) -> list[Path]:
        return [p for p in (self._mer_companion(path, "RMS"), self._mer_companion(path, "FLAG")) if p]

    def describe(self, path: Path) -> ImageRecord:
        path = Path(path)
        if _MER_PLANE.match(path.name):
            raise IngestError(f"{path}: a MER RMS/FLAG plane, not an image: ingest its BGSUB-MOSAIC science file")
        with open_fits(path) as hdul:
            primary = hdul[0].header
            i_sci = find_hdu(hdul, "SCI")
            if i_sci is None:
                i_sci = 0 if hdul[0].data is not None else (1 if len(hdul) > 1 else None)
            if i_sci is None:
                raise IngestError(f"{path}: Euclid file without a science plane (SCI)")
            sci_hdr = hdul[i_sci].header
            ny, nx = check_science(science_array(hdul, i_sci, path), path)
            filt = str(primary.get("FILTER", sci_hdr.get("FILTER", ""))).strip().upper()
            if filt not in _FILTERS:
                raise IngestError(f"{path}: unknown Euclid filter {filt!r} (known: VIS, NIR_Y, NIR_J, NIR_H)")
            band = _FILTERS[filt]
            w = validated_wcs(sci_hdr, (ny, nx), str(path))
            t0, t1, exptime = exposure_times(path, primary, sci_hdr)
            sci_name = str(sci_hdr.get("EXTNAME", i_sci))
            planes = [PlaneRef("science", path, sci_name, "science")]
            i_rms, i_flg = find_hdu(hdul, "RMS"), find_hdu(hdul, "FLG", "FLAG")
            if i_rms is not None:
                planes.append(PlaneRef("variance", path, "RMS", "rms"))
            elif (rms := self._mer_companion(path, "RMS")) is not None:
                planes.append(PlaneRef("variance", rms, "0", "rms"))
            if i_flg is not None:
                planes.append(PlaneRef("mask", path, str(hdul[i_flg].header["EXTNAME"]), "euclid-flag"))
            elif (flg := self._mer_companion(path, "FLAG")) is not None:
                planes.append(PlaneRef("mask", flg, "0", "euclid-flag"))
            kind = "coadd" if _MER_SCI.match(path.name) else "single_epoch"
            return ImageRecord(
                path=path, survey="euclid", band=band, kind=kind,
                obs_id=str(primary.get("OBS_ID", path.name)), naxis1=nx, naxis2=ny, wcs=w,
                t_min_mjd=t0, t_max_mjd=t1, exptime_s=exptime,
                zeropoint_mag=float_card(primary, sci_hdr, keys=("MAGZERO", "ZPAB", "ZPTAB")),
                saturation=float_card(primary, sci_hdr, keys=("SATURATE",)),
                gain=float_card(primary, sci_hdr, keys=("GAIN",)),
                psf_fwhm_arcsec=float_card(primary, sci_hdr, keys=("PSF_FWHM", "SEEING")),
                header=header_to_json(primary, sci_hdr), planes=planes,
            )

    def read_planes(self, path: Path) -> Planes:
        rec = self.describe(path)
        by = {p.plane: p for p in rec.planes}

        def data(ref: PlaneRef) -> tuple[np.ndarray, fits.Header]:
            with open_fits(ref.path) as hdul:
                key = int(ref.hdu) if ref.hdu.isdigit() else ref.hdu
                return np.asarray(hdul[key].data), hdul[key].header.copy()

        sci, _ = data(by["science"])
        sci = sci.astype(np.float64)
        if "variance" in by:
            rms, _ = data(by["variance"])
            var = rms.astype(np.float64) ** 2
        else:
            var = np.full_like(sci, np.nan)
        if "mask" in by:
            flg, hdr = data(by["mask"])
            mask = translate_bits(flg, _flag_mapping(hdr))
        else:
            mask = np.zeros(sci.shape, dtype=np.int32)
        return Planes(science=sci, variance=var, mask=mask, wcs=rec.wcs)
