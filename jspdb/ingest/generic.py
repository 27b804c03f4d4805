"""A generic adapter for other surveys (ZTF, Pan-STARRS, SDSS, ...), driven by a mapping file.

The mapping (TOML) says how to recognise the survey's files, which header
cards hold what, which HDUs hold the planes and what the mask bits mean::

    [survey]
    name = "ztf"                      # lower-case; registered if new
    facility = "Palomar 48-inch"
    platform = "ground"
    instrument = "ZTF"
    pixel_scale_arcsec = 1.01

    [match]                           # every card must equal (case-insensitive)
    TELESCOP = "P48"

    [keywords]
    filter = "FILTER"
    mjd = "OBSMJD"                    # else MJD-OBS / DATE-OBS
    exptime = "EXPTIME"
    zeropoint = "MAGZP"
    saturation = "SATURATE"
    gain = "GAIN"

    [filters]                         # header value -> band (name, nm)
    "ZTF_g" = { band = "g", wl_min_nm = 410, wl_eff_nm = 480, wl_max_nm = 550 }

    [planes]
    science = "0"                     # HDU index or EXTNAME
    variance = { hdu = "1", convention = "rms" }     # variance | rms | weight
    mask = { hdu = "2", bits = { 1 = "BAD", 2 = "SAT", 4 = "CR" } }
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from jspdb.errors import IngestError
from jspdb.ingest.adapters import (
    ADAPTERS,
    ImageRecord,
    PlaneRef,
    Planes,
    SurveyAdapter,
    check_science,
    header_to_json,
    open_fits,
)
from jspdb.ingest.fitsutil import exposure_times, float_card, science_array
from jspdb.ingest.masks import JSP_BITS, translate_bits
from jspdb.ingest.wcs import validated_wcs

__all__ = ["GenericAdapter", "load_mapping"]


def _hdu_key(value: Any) -> int | str:
    s = str(value)
    return int(s) if s.isdigit() else s


class GenericAdapter(SurveyAdapter):
    """An adapter configured by a mapping (see the module docstring)."""

    def __init__(self, mapping: dict[str, Any], source: str = "<mapping>") -> None:
        try:
            self.survey = dict(mapping["survey"])
            self.name = str(self.survey["name"]).lower()
            self.match = {k.upper(): str(v).upper() for k, v in mapping.get("match", {}).items()}
            self.keywords = dict(mapping.get("keywords", {}))
            self.filters = {str(k): dict(v) for k, v in mapping["filters"].items()}
            self.planes = dict(mapping.get("planes", {"science": "0"}))
        except (KeyError, TypeError, ValueError) as exc:
            raise IngestError(f"{source}: bad survey mapping: missing or malformed {exc}") from exc
        if not self.match:
            raise IngestError(f"{source}: a mapping needs a [match] table to recognise its files")
        for spec in self.filters.values():
            missing = {"band", "wl_min_nm", "wl_eff_nm", "wl_max_nm"} - set(spec)
            if missing:
                raise IngestError(f"{source}: filter entry lacks {sorted(missing)}")
        bits = self.planes.get("mask", {}).get("bits", {}) if isinstance(self.planes.get("mask"), dict) else {}
        bad = [v for v in bits.values() if v not in JSP_BITS and v is not None]
        if bad:
            raise IngestError(f"{source}: unknown jspdb mask flags {bad} (known: {sorted(JSP_BITS)})")

    def bands(self) -> list[dict[str, Any]]:
        """Bands this mapping defines (for registering the survey in the database)."""
        return [dict(v) for v in self.filters.values()]

    def identify(self, path: Path, primary: fits.Header | None) -> bool:
        return primary is not None and all(
            str(primary.get(k, "")).strip().upper() == v for k, v in self.match.items())

    def describe(self, path: Path) -> ImageRecord:
        path = Path(path)
        with open_fits(path) as hdul:
            primary = hdul[0].header
            key = _hdu_key(self.planes.get("science", "0"))
            try:
                sci_hdr = hdul[key].header
            except (KeyError, IndexError) as exc:
                raise IngestError(f"{path}: no science HDU {key!r}") from exc
            idx = hdul.index_of(key)
            ny, nx = check_science(science_array(hdul, idx, path), path)
            fkey = self.keywords.get("filter", "FILTER")
            fval = str(primary.get(fkey, sci_hdr.get(fkey, ""))).strip()
            if fval not in self.filters:
                raise IngestError(f"{path}: unknown {self.name} filter {fval!r} "
                                  f"(known: {', '.join(self.filters)})")
            w = validated_wcs(sci_hdr, (ny, nx), str(path))
            t0, t1, exptime = exposure_times(
                path, primary, sci_hdr,
                mjd_keys=tuple(k for k in [self.keywords.get("mjd")] if k),
                exptime_keys=tuple(k for k in [self.keywords.get("exptime")] if k))
            planes = [PlaneRef("science", path, str(key), "science")]
            var = self.planes.get("variance")
            if isinstance(var, dict):
                planes.append(PlaneRef("variance", path, str(var["hdu"]), str(var.get("convention", "variance"))))
            msk = self.planes.get("mask")
            if isinstance(msk, dict):
                planes.append(PlaneRef("mask", path, str(msk["hdu"]), f"generic:{self.name}"))

            def card(name: str) -> float | None:
                k = self.keywords.get(name)
                return float_card(primary, sci_hdr, keys=(k,)) if k else None

            return ImageRecord(
                path=path, survey=self.name, band=str(self.filters[fval]["band"]), kind="single_epoch",
                obs_id=path.name, naxis1=nx, naxis2=ny, wcs=w, t_min_mjd=t0, t_max_mjd=t1, exptime_s=exptime,
                zeropoint_mag=card("zeropoint"), saturation=card("saturation"), gain=card("gain"),
                header=header_to_json(primary, sci_hdr), planes=planes,
            )

    def read_planes(self, path: Path) -> Planes:
        rec = self.describe(path)
        with open_fits(path) as hdul:
            sci = science_array(hdul, hdul.index_of(_hdu_key(self.planes.get("science", "0"))), path)
            var = np.full_like(sci, np.nan)
            if isinstance(v := self.planes.get("variance"), dict):
                arr = science_array(hdul, hdul.index_of(_hdu_key(v["hdu"])), path)
                conv = v.get("convention", "variance")
                var = arr**2 if conv == "rms" else (np.where(arr > 0, 1.0 / arr, np.inf) if conv == "weight" else arr)
            mask = np.zeros(sci.shape, dtype=np.int32)
            if isinstance(mk := self.planes.get("mask"), dict):
                bits = {int(k): val for k, val in mk.get("bits", {}).items()}
                mask = translate_bits(hdul[_hdu_key(mk["hdu"])].data, bits)
        return Planes(science=sci, variance=var, mask=mask, wcs=rec.wcs)


def load_mapping(path: Path) -> GenericAdapter:
    """Read a mapping file and register its adapter (replacing one of the same name)."""
    path = Path(path)
    try:
        mapping = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise IngestError(f"{path}: cannot read survey mapping: {exc}") from exc
    adapter = GenericAdapter(mapping, source=str(path))
    if adapter.name in ("lsst", "euclid", "roman"):
        raise IngestError(f"{path}: survey name {adapter.name!r} is taken by a built-in adapter")
    ADAPTERS[adapter.name] = adapter
    return adapter
