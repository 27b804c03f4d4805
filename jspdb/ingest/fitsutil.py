"""Small FITS helpers shared by the adapters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from jspdb.errors import IngestError

__all__ = ["exposure_times", "find_hdu", "float_card", "science_array"]


def find_hdu(hdul: fits.HDUList, *names: str) -> int | None:
    """Index of the first HDU whose EXTNAME is one of ``names`` (case-insensitive)."""
    wanted = {n.upper() for n in names}
    for i, hdu in enumerate(hdul):
        if str(hdu.header.get("EXTNAME", "")).upper() in wanted:
            return i
    return None


def float_card(*headers: fits.Header, keys: tuple[str, ...]) -> float | None:
    """First finite numeric value of any of ``keys`` in the headers."""
    for key in keys:
        for h in headers:
            v = h.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v):
                return float(v)
    return None


def exposure_times(path: Path, *headers: fits.Header, mjd_keys: tuple[str, ...] = (),
                   exptime_keys: tuple[str, ...] = ()) -> tuple[float, float, float]:
    """(t_min, t_max) in MJD and exposure time in seconds from standard cards.

    Uses ``mjd_keys`` then ``MJD-OBS`` (or ``DATE-OBS``), and ``exptime_keys``
    then ``EXPTIME``; ``MJD-END`` when present.
    """
    exptime = float_card(*headers, keys=(*exptime_keys, "EXPTIME", "EXPOSURE", "TEXPTIME"))
    if exptime is None:
        raise IngestError(f"{path}: no exposure time (EXPTIME)")
    t0 = float_card(*headers, keys=(*mjd_keys, "MJD-OBS", "MJD_OBS", "MJD-BEG"))
    if t0 is None:
        for h in headers:
            if "DATE-OBS" in h:
                try:
                    t0 = float(Time(h["DATE-OBS"], scale="utc").mjd)
                    break
                except ValueError as exc:
                    raise IngestError(f"{path}: unreadable DATE-OBS {h['DATE-OBS']!r}") from exc
    if t0 is None:
        raise IngestError(f"{path}: no observation time (MJD-OBS or DATE-OBS)")
    t1 = float_card(*headers, keys=("MJD-END",))
    if t1 is None:
        t1 = t0 + exptime / 86400.0
    return t0, t1, exptime


def science_array(hdul: fits.HDUList, index: int, path: Path) -> np.ndarray:
    """Data of HDU ``index`` as a float array, or `IngestError`."""
    try:
        data = hdul[index].data
    except Exception as exc:  # truncated data raise here in astropy
        raise IngestError(f"{path}: truncated or unreadable pixel data in HDU {index}: {exc}") from exc
    if data is None:
        raise IngestError(f"{path}: HDU {index} has no pixel data")
    return np.asarray(data, dtype=np.float64)
