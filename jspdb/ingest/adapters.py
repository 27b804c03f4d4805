"""Survey adapters: one per delivery convention, found through a registry.

An adapter turns one survey file into an `ImageRecord` (the unified metadata
of the ``image`` table, header-only) and, for later tiers, into `Planes`
(science, variance and mask in the jspdb convention). Registering a new
survey is one `register_adapter` call, not an ``if`` chain (after astropy's
``io.registry``).
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.wcs import WCS

from jspdb.errors import IngestError

__all__ = [
    "ADAPTERS",
    "ImageRecord",
    "PlaneRef",
    "Planes",
    "SurveyAdapter",
    "get_adapter",
    "header_to_json",
    "identify",
    "open_fits",
    "register_adapter",
]

#: Registered adapters by name, in registration order (generic last).
ADAPTERS: dict[str, SurveyAdapter] = {}


@dataclass(frozen=True)
class PlaneRef:
    """Where one plane of an image lives."""

    plane: str  # science | variance | mask
    path: Path
    hdu: str  # HDU name/index, or ASDF key
    convention: str  # how to read it: variance, rms, rubin-mask, euclid-flag, roman-dq, ...


@dataclass
class ImageRecord:
    """Unified, ObsCore-aligned metadata of one image (units in the names)."""

    path: Path
    survey: str
    band: str
    kind: str
    obs_id: str
    naxis1: int
    naxis2: int
    wcs: WCS
    t_min_mjd: float
    t_max_mjd: float
    exptime_s: float
    zeropoint_mag: float | None
    saturation: float | None = None
    gain: float | None = None
    psf_fwhm_arcsec: float | None = None
    header: dict[str, Any] = field(default_factory=dict)
    planes: list[PlaneRef] = field(default_factory=list)

    @property
    def has_variance(self) -> bool:
        return any(p.plane == "variance" for p in self.planes)

    @property
    def has_mask(self) -> bool:
        return any(p.plane == "mask" for p in self.planes)


@dataclass
class Planes:
    """Pixels of an image in jspdb conventions.

    ``science`` in the file's units; ``variance`` in those units squared (RMS
    squared where the survey ships RMS; NaN where there is no variance plane);
    ``mask`` in `jspdb.ingest.masks.JSP_BITS`.
    """

    science: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    wcs: WCS


class SurveyAdapter(ABC):
    """Reads one survey's delivery convention.

    Subclasses set `name` and implement `identify`, `describe` and
    `read_planes`. ``describe`` reads headers only; it raises `IngestError`
    with the reason for anything it cannot accept.
    """

    name: ClassVar[str]
    #: File name endings this adapter reads.
    suffixes: ClassVar[tuple[str, ...]] = (".fits", ".fit", ".fits.fz", ".fits.gz")

    @abstractmethod
    def identify(self, path: Path, primary: fits.Header | None) -> bool:
        """True if the file is in this adapter's convention.

        ``primary`` is the primary FITS header, or None for non-FITS files.
        """

    @abstractmethod
    def describe(self, path: Path) -> ImageRecord:
        """Metadata of the image in ``path`` (headers only)."""

    @abstractmethod
    def read_planes(self, path: Path) -> Planes:
        """Science, variance and mask of the image, in jspdb conventions."""

    def companions(self, path: Path) -> list[Path]:
        """Other files that are planes of the image in ``path`` (not images of their own)."""
        return []


def register_adapter(cls: type[SurveyAdapter]) -> type[SurveyAdapter]:
    """Class decorator: register an adapter under ``cls.name``."""
    ADAPTERS[cls.name] = cls()
    return cls


def get_adapter(name: str) -> SurveyAdapter:
    """The adapter registered as ``name``."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise IngestError(f"no survey adapter named {name!r} (known: {', '.join(ADAPTERS)})") from None


def _is_fits_name(path: Path) -> bool:
    return any(path.name.lower().endswith(s) for s in (".fits", ".fit", ".fits.fz", ".fits.gz", ".fz"))


@contextmanager
def open_fits(path: Path, *, lazy: bool = False) -> Iterator[fits.HDUList]:
    """Open a FITS file (plain or tile-compressed) or raise `IngestError` saying why not.

    A context manager: the file is closed on exit, also when astropy fails
    half-way through a damaged file. ``lazy=True`` reads HDUs only when they
    are asked for (enough for the primary header); otherwise every HDU's
    header is read at once, so a truncated file is caught here.
    """
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if not path.is_file():
        raise IngestError(f"{path}: not a regular file")
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, whatever astropy does
    except OSError as exc:
        raise IngestError(f"{path}: unreadable: {exc.strerror}") from exc
    try:
        magic = fh.read(30)
        fh.seek(0)
        if not magic.startswith(b"SIMPLE  ="):
            raise IngestError(f"{path}: not a FITS file (no SIMPLE card at the start)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", VerifyWarning)
                # No hdul.verify(): it costs more than the rest of the ingest and
                # astropy parses what it can; what it cannot fails below, loudly.
                hdul = fits.open(fh, memmap=False, lazy_load_hdus=lazy, checksum=False)
        except Exception as exc:  # astropy raises OSError/ValueError/TypeError for damaged files
            raise IngestError(f"{path}: damaged or truncated FITS file: {exc}") from exc
        with hdul:
            yield hdul
    finally:
        fh.close()


def identify(path: Path) -> SurveyAdapter:
    """The adapter for ``path`` (first registered one that claims it)."""
    path = Path(path)
    primary = None
    if _is_fits_name(path):
        with open_fits(path, lazy=True) as hdul:
            primary = hdul[0].header.copy()
    for adapter in ADAPTERS.values():
        if adapter.identify(path, primary):
            return adapter
    what = "FITS file" if primary is not None else "file"
    raise IngestError(f"{path}: no survey adapter recognises this {what} "
                      f"(TELESCOP={primary.get('TELESCOP') if primary is not None else None!r}); "
                      f"use --survey or a generic mapping")


def header_to_json(*headers: fits.Header) -> dict[str, Any]:
    """Header cards as a JSON-able dict (later headers win; no COMMENT/HISTORY)."""
    out: dict[str, Any] = {}
    for h in headers:
        for card in h.cards:
            key = card.keyword
            if not key or key in ("COMMENT", "HISTORY", ""):
                continue
            v = card.value
            if isinstance(v, bool | int | str) or v is None:
                out[key] = v
            elif isinstance(v, float):
                out[key] = v if math.isfinite(v) else str(v)
            else:
                out[key] = str(v)
    return out


def check_science(data: np.ndarray | None, path: Path) -> tuple[int, int]:
    """Shape (ny, nx) of a usable science array, or `IngestError`."""
    if data is None:
        raise IngestError(f"{path}: science plane has no data")
    if data.ndim != 2:
        raise IngestError(f"{path}: science plane is {data.ndim}-dimensional, expected 2")
    if not np.isfinite(data).any():
        raise IngestError(f"{path}: science plane is entirely NaN/Inf")
    return data.shape
