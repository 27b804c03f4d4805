"""Read an ingested image's planes from where the database says they are.

``jsp.image_plane`` records, per plane, the file, the HDU (or ASDF key) and
its convention; this turns them into `Planes` in jspdb conventions, whatever
the survey delivered and wherever the datastore put the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from jspdb.errors import IngestError
from jspdb.ingest.adapters import Planes, open_fits
from jspdb.ingest.datastore import uri_to_path
from jspdb.ingest.masks import translate_bits
from jspdb.ingest.wcs import wcs_from_text

__all__ = ["load_planes"]


def _read(path: Path, hdu: str) -> tuple[np.ndarray, fits.Header | None]:
    if path.suffix.lower() == ".asdf":
        from jspdb.ingest.roman import _open_asdf, _quiet_dates

        with _quiet_dates(), _open_asdf(path) as m:
            return np.asarray(getattr(m, hdu)), None
    with open_fits(path) as hdul:
        key: int | str = int(hdu) if hdu.isdigit() else hdu
        return np.asarray(hdul[key].data), hdul[key].header.copy()


def _mask(data: np.ndarray, header: fits.Header | None, convention: str) -> np.ndarray:
    if convention == "rubin-mask":
        from jspdb.ingest.lsst import rubin_mask_mapping

        return translate_bits(data, rubin_mask_mapping(header))
    if convention == "euclid-flag":
        from jspdb.ingest.euclid import _flag_mapping

        return translate_bits(data, _flag_mapping(header))
    if convention == "roman-dq":
        from jspdb.ingest.roman import roman_dq_mapping

        return translate_bits(data, roman_dq_mapping())
    if convention.startswith("generic:"):
        from jspdb.ingest.adapters import ADAPTERS

        ad = ADAPTERS.get(convention.split(":", 1)[1])
        bits = {int(k): v for k, v in ad.planes["mask"].get("bits", {}).items()} if ad else {}
        return translate_bits(data, bits)
    raise IngestError(f"unknown mask convention {convention!r}")


def load_planes(rows: Sequence[Mapping], wcs_header: str, shape: tuple[int, int]) -> Planes:
    """Planes of one image from its ``jsp.image_plane`` rows.

    Parameters
    ----------
    rows
        Mappings with ``plane``, ``uri``, ``hdu``, ``convention``.
    wcs_header
        The image's FITS WCS header (``jsp.image.wcs_header``).
    shape
        (ny, nx).
    """
    by = {r["plane"]: r for r in rows}
    if "science" not in by:
        raise IngestError("image has no science plane")
    sci, _ = _read(uri_to_path(by["science"]["uri"]), by["science"]["hdu"])
    sci = sci.astype(np.float64)
    var = np.full_like(sci, np.nan)
    if "variance" in by:
        v, _ = _read(uri_to_path(by["variance"]["uri"]), by["variance"]["hdu"])
        conv = by["variance"]["convention"]
        v = v.astype(np.float64)
        var = v**2 if conv == "rms" else (np.where(v > 0, 1.0 / v, np.inf) if conv == "weight" else v)
    mask = np.zeros(sci.shape, dtype=np.int32)
    if "mask" in by:
        m, hdr = _read(uri_to_path(by["mask"]["uri"]), by["mask"]["hdu"])
        mask = _mask(m, hdr, by["mask"]["convention"])
    w = wcs_from_text(wcs_header, shape)
    return Planes(science=sci, variance=var, mask=mask, wcs=w)
