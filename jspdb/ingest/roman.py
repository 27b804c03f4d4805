"""Roman WFI Level-2 images: ASDF through roman_datamodels (GWCS), or FITS.

Level-2 ``ImageModel`` files hold ``data`` and ``err`` (DN/s), ``dq`` (pixel
flags of ``roman_datamodels.dqflags``) and a GWCS in ``meta.wcs``. The zero
point follows from ``meta.photometry``: MJy/sr per DN/s times the pixel solid
angle. The GWCS is approximated by a FITS TAN-SIP header
(``gwcs.WCS.to_fits_sip``) for the footprint and the ``image`` row.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from erfa import ErfaWarning

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

__all__ = ["ROMAN_DQ_NAMES", "RomanAdapter", "roman_dq_mapping"]

_FILTERS = ("F062", "F087", "F106", "F129", "F158", "F184", "F146", "F213")

#: Roman DQ flag name -> jspdb flag.
ROMAN_DQ_NAMES: dict[str, str | None] = {
    "DO_NOT_USE": "BAD", "SATURATED": "SAT", "JUMP_DET": "CR", "DEAD": "BAD", "HOT": "BAD",
    "WARM": "SUSPECT", "LOW_QE": "SUSPECT", "NONLINEAR": "SUSPECT", "NON_SCIENCE": "NO_DATA",
    "NO_FLAT_FIELD": "SUSPECT", "REFERENCE_PIXEL": "NO_DATA", "OUTLIER": "CR", "GOOD": None,
}
_FALLBACK_DQ = {"DO_NOT_USE": 1, "SATURATED": 2, "JUMP_DET": 4, "DEAD": 1024, "HOT": 2048, "WARM": 4096}


def roman_dq_mapping() -> dict[int, str | None]:
    """Roman DQ bit value -> jspdb flag (from roman_datamodels when installed)."""
    try:
        from roman_datamodels.dqflags import pixel

        values = {f.name: int(f.value) for f in pixel}
    except ImportError:  # pragma: no cover - roman_datamodels is a dependency
        values = _FALLBACK_DQ
    return {v: ROMAN_DQ_NAMES.get(name, "OTHER") for name, v in values.items() if v}


def _zeropoint(conv_mjy_sr: float | None, pixel_area_sr: float | None) -> float | None:
    """AB magnitude of 1 DN/s from MJy/sr per DN/s and the pixel area (sr)."""
    if not conv_mjy_sr or not pixel_area_sr or conv_mjy_sr <= 0 or pixel_area_sr <= 0:
        return None
    njy_per_dns = conv_mjy_sr * 1e15 * pixel_area_sr
    # AB in the nJy convention used throughout jspdb: m = 31.4 - 2.5 log10(f / nJy)
    return 31.4 - 2.5 * math.log10(njy_per_dns)


@contextmanager
def _quiet_dates() -> Iterator[None]:
    """Silence warnings that are expected when reading Roman files here.

    Simulated (and planned) Roman exposures lie in the future: ERFA warns of a
    "dubious year" and asdf re-raises it when the node is read. Files in the
    datastore carry a content prefix, so ``meta.filename`` differs from the
    file's name by design.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dubious year.*")
        warnings.filterwarnings("ignore", category=ErfaWarning)
        # The datastore names files by content; meta.filename keeps the survey's name.
        warnings.filterwarnings("ignore", message=r".*meta\.filename.*does not match filename.*")
        yield


def _open_asdf(path: Path):
    try:
        import roman_datamodels.datamodels as rdm
    except ImportError as exc:  # pragma: no cover
        raise IngestError(f"{path}: reading Roman ASDF needs roman_datamodels") from exc
    try:
        with _quiet_dates():
            return rdm.open(path)
    except Exception as exc:  # asdf/yaml/schema errors of many kinds
        raise IngestError(f"{path}: not a readable Roman ASDF file: {exc}") from exc


def _gwcs_to_fits(gw, shape: tuple[int, int], path: Path) -> WCS:
    ny, nx = shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdr = gw.to_fits_sip(bounding_box=((-0.5, nx - 0.5), (-0.5, ny - 0.5)), max_pix_error=0.01,
                                 degree=None)
    except Exception as exc:
        raise IngestError(f"{path}: GWCS cannot be expressed as a FITS WCS: {exc}") from exc
    return validated_wcs(hdr, shape, str(path))


@register_adapter
class RomanAdapter(SurveyAdapter):
    """Roman WFI Level-2 (calibrated) images."""

    name = "roman"
    suffixes = (".asdf", ".fits", ".fit", ".fits.fz")

    def identify(self, path: Path, primary: fits.Header | None) -> bool:
        if Path(path).suffix.lower() == ".asdf":
            return True
        return primary is not None and str(primary.get("TELESCOP", "")).upper().startswith("ROMAN")

    def describe(self, path: Path) -> ImageRecord:
        path = Path(path)
        if path.suffix.lower() == ".asdf":
            return self._describe_asdf(path)
        return self._describe_fits(path)

    def _describe_asdf(self, path: Path) -> ImageRecord:
        with _quiet_dates(), _open_asdf(path) as m:
            data = np.asarray(m.data)
            ny, nx = check_science(data, path)
            filt = str(m.meta.instrument.optical_element)
            if filt not in _FILTERS:
                raise IngestError(f"{path}: unknown Roman filter {filt!r} (known: {' '.join(_FILTERS)})")
            if getattr(m.meta, "wcs", None) is None:
                raise IngestError(f"{path}: Roman file without a WCS (meta.wcs)")
            w = _gwcs_to_fits(m.meta.wcs, (ny, nx), path)
            t0 = float(m.meta.exposure.start_time.mjd)
            t1 = float(m.meta.exposure.end_time.mjd)
            exptime = float(m.meta.exposure.exposure_time)
            zp = _zeropoint(float(m.meta.photometry.conversion_megajanskys or 0),
                            float(m.meta.photometry.pixel_area or 0))
            header = {"filename": str(m.meta.filename), "optical_element": filt,
                      "detector": str(m.meta.instrument.detector), "exposure_type": str(m.meta.exposure.type)}
            planes = [PlaneRef("science", path, "data", "science")]
            if getattr(m, "err", None) is not None:
                planes.append(PlaneRef("variance", path, "err", "rms"))
            if getattr(m, "dq", None) is not None:
                planes.append(PlaneRef("mask", path, "dq", "roman-dq"))
            return ImageRecord(
                path=path, survey="roman", band=filt, kind="single_epoch", obs_id=str(m.meta.filename),
                naxis1=nx, naxis2=ny, wcs=w, t_min_mjd=t0, t_max_mjd=t1, exptime_s=exptime,
                zeropoint_mag=zp, header=header, planes=planes,
            )

    def _describe_fits(self, path: Path) -> ImageRecord:
        with open_fits(path) as hdul:
            primary = hdul[0].header
            i_sci = find_hdu(hdul, "SCI")
            if i_sci is None:
                raise IngestError(f"{path}: Roman FITS file without a SCI extension")
            sci_hdr = hdul[i_sci].header
            ny, nx = check_science(science_array(hdul, i_sci, path), path)
            filt = str(primary.get("OPT_ELEM", primary.get("FILTER", ""))).strip().upper()
            if filt not in _FILTERS:
                raise IngestError(f"{path}: unknown Roman filter {filt!r} (known: {' '.join(_FILTERS)})")
            w = validated_wcs(sci_hdr, (ny, nx), str(path))
            t0, t1, exptime = exposure_times(path, primary, sci_hdr)
            planes = [PlaneRef("science", path, "SCI", "science")]
            if find_hdu(hdul, "ERR") is not None:
                planes.append(PlaneRef("variance", path, "ERR", "rms"))
            if find_hdu(hdul, "DQ") is not None:
                planes.append(PlaneRef("mask", path, "DQ", "roman-dq"))
            zp = float_card(primary, keys=("MAGZERO",))
            return ImageRecord(
                path=path, survey="roman", band=filt, kind="single_epoch", obs_id=path.name,
                naxis1=nx, naxis2=ny, wcs=w, t_min_mjd=t0, t_max_mjd=t1, exptime_s=exptime,
                zeropoint_mag=zp, saturation=float_card(primary, keys=("SATURATE",)),
                gain=float_card(primary, keys=("GAIN",)), header=header_to_json(primary, sci_hdr),
                planes=planes,
            )

    def read_planes(self, path: Path) -> Planes:
        path = Path(path)
        if path.suffix.lower() == ".asdf":
            rec = self._describe_asdf(path)
            with _quiet_dates(), _open_asdf(path) as m:
                sci = np.asarray(m.data, dtype=np.float64)
                var = np.asarray(m.err, dtype=np.float64) ** 2
                mask = translate_bits(np.asarray(m.dq), roman_dq_mapping())
            return Planes(science=sci, variance=var, mask=mask, wcs=rec.wcs)
        rec = self._describe_fits(path)
        with open_fits(path) as hdul:
            sci = science_array(hdul, find_hdu(hdul, "SCI"), path)
            i_err, i_dq = find_hdu(hdul, "ERR"), find_hdu(hdul, "DQ")
            var = science_array(hdul, i_err, path) ** 2 if i_err is not None else np.full_like(sci, np.nan)
            mask = (translate_bits(hdul[i_dq].data, roman_dq_mapping()) if i_dq is not None
                    else np.zeros(sci.shape, dtype=np.int32))
        return Planes(science=sci, variance=var, mask=mask, wcs=rec.wcs)
