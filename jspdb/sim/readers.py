"""Read a written simulated image back into a `SimImage` (pixels from the file, truth from its JSON).

This lets later tiers inject fake sources into images that are on disk:
``inject_sources(load_field_image(out_dir, "lsst_r_e00"), ...)``. One reader per
survey convention, registered like the writers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from jspdb.errors import SimulationError
from jspdb.sim.image import MASK_BITS, SimImage, wcs_from_header
from jspdb.sim.psf import PSFModel
from jspdb.sim.writers import EUCLID_FLAGS, ROMAN_DQ

__all__ = ["READERS", "load_field_image", "read_image", "register_reader"]

#: Pixel planes read from a file: science, variance, internal mask, written WCS.
Planes = tuple[np.ndarray, np.ndarray, np.ndarray, WCS]
PlaneReader = Callable[[Path], Planes]

#: Registered readers, by survey.
READERS: dict[str, PlaneReader] = {}


def register_reader(survey: str) -> Callable[[PlaneReader], PlaneReader]:
    """Decorator registering ``fn(path) -> (science, variance, mask, wcs)`` for ``survey``."""

    def deco(fn: PlaneReader) -> PlaneReader:
        READERS[survey] = fn
        return fn

    return deco


def _bit(name: str) -> int:
    return 1 << MASK_BITS[name]


@register_reader("lsst")
def _read_lsst(path: Path) -> Planes:
    with fits.open(path) as hdul:
        return (hdul["IMAGE"].data.astype(np.float32), hdul["VARIANCE"].data.astype(np.float32),
                hdul["MASK"].data.astype(np.int32), WCS(hdul["IMAGE"].header))


@register_reader("euclid")
def _read_euclid(path: Path) -> Planes:
    with fits.open(path) as hdul:
        flg = hdul["FLG"].data
        mask = np.zeros(flg.shape, dtype=np.int32)
        mask[(flg & EUCLID_FLAGS["HOT"]) != 0] |= _bit("BAD")
        mask[(flg & EUCLID_FLAGS["SAT"]) != 0] |= _bit("SAT")
        mask[(flg & EUCLID_FLAGS["COSMIC"]) != 0] |= _bit("CR")
        rms = hdul["RMS"].data.astype(np.float32)
        return hdul["SCI"].data.astype(np.float32), rms * rms, mask, WCS(hdul["SCI"].header)


def _roman_mask(dq: np.ndarray) -> np.ndarray:
    mask = np.zeros(dq.shape, dtype=np.int32)
    mask[(dq & ROMAN_DQ["DEAD"]) != 0] |= _bit("BAD")
    mask[(dq & ROMAN_DQ["SATURATED"]) != 0] |= _bit("SAT")
    mask[(dq & ROMAN_DQ["JUMP_DET"]) != 0] |= _bit("CR")
    return mask


@register_reader("roman")
def _read_roman(path: Path) -> Planes:
    if path.suffix == ".fits":
        with fits.open(path) as hdul:
            err = hdul["ERR"].data.astype(np.float32)
            return (hdul["SCI"].data.astype(np.float32), err * err,
                    _roman_mask(hdul["DQ"].data.astype(np.uint32)), WCS(hdul["SCI"].header))
    import roman_datamodels as rdm

    with rdm.open(path) as model:
        data = np.array(model.data, dtype=np.float32)
        err = np.array(model.err, dtype=np.float32)
        dq = np.array(model.dq, dtype=np.uint32)
    # the written WCS as FITS (the GWCS is the same TAN projection)
    return data, err * err, _roman_mask(dq), None  # type: ignore[return-value]


def read_image(path: Path | str, truth_path: Path | str) -> SimImage:
    """Rebuild a `SimImage` from a written image file and its ``truth/<image_id>.json``.

    Pixels and the written WCS come from the file (for Roman ASDF the written
    WCS is taken from the truth file; it is the same TAN projection as the
    GWCS); the true WCS, zero points, PSF and systematics from the truth file.
    Roman ``err`` is stored as float16 by the RAD schema, so its variance is
    good to ~0.1 per cent.
    """
    truth: dict[str, Any] = json.loads(Path(truth_path).read_text())
    survey = truth["survey"]
    try:
        reader = READERS[survey]
    except KeyError:
        raise SimulationError(f"no reader registered for survey {survey!r}") from None
    science, variance, mask, wcs_written = reader(Path(path))
    if wcs_written is None:
        wcs_written = wcs_from_header(truth["wcs_written"])
    return SimImage(
        image_id=truth["image_id"], band=truth["band"], epoch=truth["epoch"], mjd=truth["mjd"],
        science=science, variance=variance, mask=mask,
        wcs_true=wcs_from_header(truth["wcs_true"]), wcs_written=wcs_written,
        zp_true=truth["zp_true"], zp_nominal=truth["zp_nominal"],
        psf=PSFModel.from_dict(truth["psf"]), sky_level=truth["sky_level"],
        image_unit=truth["image_unit"], e_per_unit=truth["e_per_unit"],
        saturation=truth["saturation"], systematics=truth["systematics"],
    )


def load_field_image(out_dir: Path | str, image_id: str) -> SimImage:
    """Read image ``image_id`` of a field written by `jspdb.sim.writers.write_field`."""
    out = Path(out_dir)
    index = json.loads((out / "field.json").read_text())
    for entry in index["images"]:
        if entry["image_id"] == image_id:
            return read_image(out / entry["file"], out / entry["truth"])
    raise SimulationError(f"{out}: no image {image_id!r} in field.json")
