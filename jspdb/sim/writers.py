"""Put a simulated field on disk, each survey in its own delivery convention.

One writer per survey, registered with `register_writer` (a new convention is
one registration, not an ``if`` chain):

- ``lsst``: Rubin calexp-like multi-extension FITS: empty primary HDU with the
  exposure keywords, then ``IMAGE`` (adu), ``MASK`` (int32 bit planes named by
  ``MP_<PLANE>`` keywords) and ``VARIANCE`` (adu^2), each with the written WCS.
- ``euclid``: Euclid-like multi-extension FITS: primary HDU with the exposure
  keywords, then ``SCI`` (electrons), ``RMS`` (electrons) and ``FLG`` (int32
  Euclid-like flag bits named by ``FLAG_<NAME>`` keywords).
- ``roman``: Roman WFI Level-2 ``ImageModel`` in ASDF through
  ``roman_datamodels`` with a GWCS (data and err in DN/s, dq with the Roman
  pixel flags); when ``roman_datamodels`` is not importable, a FITS file with
  ``SCI``/``ERR``/``DQ`` extensions and Roman-like keywords.

Next to the images: ``truth.parquet``, ``reference.parquet``, one
``truth/<image_id>.json`` per image (true WCS header, true zero point, PSF
model, injected systematics) and ``field.json`` (spec, summary, file index).
Writing is deterministic: the same field gives byte-identical files.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits
from astropy.time import Time
from erfa import ErfaWarning

from jspdb.errors import SimulationError
from jspdb.sim.bands import get_band, get_survey
from jspdb.sim.field import Field
from jspdb.sim.image import MASK_BITS, SimImage, wcs_to_header

__all__ = [
    "EUCLID_FLAGS",
    "ROMAN_DQ",
    "WRITERS",
    "column_metadata",
    "register_writer",
    "write_field",
    "write_image",
    "write_table",
]

ImageWriter = Callable[[SimImage, Path], Path]

#: Registered image writers, by survey.
WRITERS: dict[str, ImageWriter] = {}

#: Euclid-like flag bits of the FLG plane.
EUCLID_FLAGS = {"INVALID": 1, "HOT": 2, "COLD": 4, "SAT": 8, "COSMIC": 16}

#: Roman pixel DQ bits used (values of ``roman_datamodels.dqflags.pixel``).
ROMAN_DQ = {"DO_NOT_USE": 1, "SATURATED": 2, "JUMP_DET": 4, "DEAD": 1024}


def register_writer(survey: str) -> Callable[[ImageWriter], ImageWriter]:
    """Decorator registering ``fn(image, directory) -> path`` as the writer of ``survey``."""

    def deco(fn: ImageWriter) -> ImageWriter:
        WRITERS[survey] = fn
        return fn

    return deco


def write_image(image: SimImage, directory: Path) -> Path:
    """Write one image with its survey's registered writer; return the file path."""
    try:
        writer = WRITERS[image.survey]
    except KeyError:
        raise SimulationError(f"no writer registered for survey {image.survey!r}") from None
    directory.mkdir(parents=True, exist_ok=True)
    return writer(image, directory)


# --- Parquet -----------------------------------------------------------------

_COLUMN_DOC: dict[str, tuple[str, str]] = {
    "id": ("", "truth source identifier"),
    "kind": ("", "'star' or 'galaxy'"),
    "ra": ("deg", "right ascension (ICRS), at ref_epoch for stars"),
    "dec": ("deg", "declination (ICRS), at ref_epoch for stars"),
    "pmra": ("mas/yr", "proper motion in right ascension times cos(dec)"),
    "pmdec": ("mas/yr", "proper motion in declination"),
    "parallax": ("mas", "parallax"),
    "ref_epoch": ("yr", "Julian epoch of ra, dec"),
    "redshift": ("", "galaxy redshift"),
    "sed": ("", "SED: CWW template name, or 'blackbody' for stars"),
    "teff": ("K", "stellar effective temperature"),
    "gaia_g": ("mag", "approximate Gaia G magnitude"),
    "bulge_fraction": ("", "fraction of the flux in the bulge"),
    "bulge_n": ("", "Sersic index of the bulge"),
    "bulge_hlr": ("arcsec", "circularised half-light radius of the bulge"),
    "bulge_e": ("", "bulge ellipticity |g| = (a-b)/(a+b)"),
    "disk_n": ("", "Sersic index of the disk"),
    "disk_hlr": ("arcsec", "circularised half-light radius of the disk"),
    "disk_e": ("", "disk ellipticity |g| = (a-b)/(a+b)"),
    "pa": ("deg", "position angle of the major axis, east of north"),
    "source_id": ("", "reference catalog source identifier"),
    "ra_error": ("mas", "error of ra times cos(dec)"),
    "dec_error": ("mas", "error of dec"),
    "parallax_error": ("mas", "error of parallax"),
    "pmra_error": ("mas/yr", "error of pmra"),
    "pmdec_error": ("mas/yr", "error of pmdec"),
    "phot_g_mean_mag": ("mag", "G magnitude"),
    "has_xp": ("", "true where Gaia would publish XP spectra (G < 17.65)"),
    "truth_id": ("", "truth catalog id of this star (simulation only)"),
}


def column_metadata(name: str) -> tuple[str, str]:
    """(unit, description) of a truth or reference catalog column."""
    if name in _COLUMN_DOC:
        return _COLUMN_DOC[name]
    m = re.match(r"(flux|leff|magerr|mag)_(\w+)$", name)
    if m:
        kind, band = m.groups()
        return {
            "flux": ("nJy", f"true flux in band {band}"),
            "leff": ("nm", f"photon-weighted mean wavelength of the source in band {band}"),
            "mag": ("mag", f"synthetic AB magnitude in band {band}"),
            "magerr": ("mag", f"error of the synthetic AB magnitude in band {band}"),
        }[kind]
    return ("", "")


def write_table(table: pa.Table, path: Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write a Parquet file with each column's unit and description in the schema metadata."""
    fields = []
    for f in table.schema:
        unit, desc = column_metadata(f.name)
        fields.append(f.with_metadata({"unit": unit, "description": desc}))
    schema = pa.schema(fields, metadata={"jspdb": json.dumps(metadata or {}, sort_keys=True)})
    pq.write_table(table.cast(schema), path, compression="zstd")
    return path


# --- FITS helpers ------------------------------------------------------------


def mjd_to_isot(mjd: float) -> str:
    """ISO-8601 UTC string of an MJD, to the millisecond.

    Plain calendar arithmetic (no leap-second table): simulated dates lie beyond
    the table, where ERFA would warn of a "dubious year".
    """
    t = _MJD0 + timedelta(days=float(mjd))
    return t.isoformat(timespec="milliseconds")


_MJD0 = datetime(1858, 11, 17)


@contextmanager
def _future_dates_ok():
    # astropy/ERFA warn that UTC dates beyond the leap-second table are "dubious";
    # for simulated future exposures that is expected and harmless
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ErfaWarning)
        yield


def _exposure_cards(image: SimImage) -> list[tuple[str, Any, str]]:
    band = image.band_info
    survey = get_survey(band.survey)
    ra, dec = image.wcs_written.wcs.crval
    return [
        ("TELESCOP", survey.telescope, "telescope"),
        ("INSTRUME", band.instrument, "instrument"),
        ("DATE-OBS", mjd_to_isot(image.mjd), "start of exposure (UTC)"),
        ("DATE-END", mjd_to_isot(image.mjd + band.exptime / 86400.0), "end of exposure (UTC)"),
        ("MJD-OBS", image.mjd, "[d] start of exposure (UTC)"),
        ("EXPTIME", band.exptime, "[s] exposure time"),
        ("GAIN", band.gain, "[e-/adu] gain"),
        ("RDNOISE", band.read_noise, "[e-] read noise"),
        ("RA", float(ra), "[deg] pointing right ascension"),
        ("DEC", float(dec), "[deg] pointing declination"),
        ("OBJECT", "jspdb-sim", "simulated field"),
        ("ORIGIN", "jspdb.sim", "simulated data"),
    ]


def _wcs_cards(image: SimImage) -> fits.Header:
    hdr = fits.Header()
    for k, v in wcs_to_header(image.wcs_written).items():
        if k in ("MJDREF", "DATEREF", "MJD-OBS", "DATE-OBS"):
            continue
        hdr[k] = v
    return hdr


def _hdu(data: np.ndarray, name: str, image: SimImage, extra: list[tuple[str, Any, str]]) -> fits.ImageHDU:
    hdu = fits.ImageHDU(data=data, name=name)
    hdu.header.update(_wcs_cards(image))
    for k, v, c in extra:
        # long keywords (MP_DETECTED) are HIERARCH cards, as the Rubin stack writes them
        hdu.header[k if len(k) <= 8 else f"HIERARCH {k}"] = (v, c)
    return hdu


def _write_fits(hdus: list[fits.hdu.base.ExtensionHDU], path: Path) -> Path:
    fits.HDUList(hdus).writeto(path, overwrite=True, output_verify="exception")
    return path


@register_writer("lsst")
def write_lsst(image: SimImage, directory: Path) -> Path:
    """Rubin calexp-like MEF: primary + IMAGE / MASK / VARIANCE."""
    band = image.band_info
    primary = fits.PrimaryHDU()
    for k, v, c in _exposure_cards(image):
        primary.header[k] = (v, c)
    visit = int(round(image.mjd * 100)) % 10**9
    primary.header["FILTER"] = (f"{band.filter}_sim", "physical filter")
    primary.header["BAND"] = (band.filter, "abstract filter (band)")
    primary.header["VISIT"] = (visit, "visit identifier")
    primary.header["DETECTOR"] = (0, "detector identifier")
    primary.header["DARKTIME"] = (band.exptime, "[s] dark time")
    primary.header["ROTPA"] = (image.systematics.get("pointing_rotation_deg", 0.0), "[deg] sky rotation")
    primary.header["MAGZERO"] = (image.zp_nominal, "[mag] AB zero point (adu total)")
    primary.header["FLUXMAG0"] = (10 ** (0.4 * image.zp_nominal), "[adu] flux of a 0-mag source")
    primary.header["SATURATE"] = (image.saturation, "[adu] saturation level")
    primary.header["SKYLEVEL"] = (image.sky_level, "[adu] background subtracted")
    primary.header["BUNIT"] = ("adu", "pixel unit")
    mp = [(f"MP_{k}", v, f"mask plane {k}") for k, v in MASK_BITS.items()]
    hdus = [
        primary,
        _hdu(image.science, "IMAGE", image, [("BUNIT", "adu", "pixel unit")]),
        _hdu(image.mask, "MASK", image, mp),
        _hdu(image.variance, "VARIANCE", image, [("BUNIT", "adu**2", "pixel unit")]),
    ]
    return _write_fits(hdus, directory / f"calexp_{image.image_id}.fits")


def euclid_flags(mask: np.ndarray) -> np.ndarray:
    """Map internal mask bits to Euclid-like FLG bits."""
    out = np.zeros(mask.shape, dtype=np.int32)
    bad = (mask & (1 << MASK_BITS["BAD"])) != 0
    out[bad] |= EUCLID_FLAGS["HOT"] | EUCLID_FLAGS["INVALID"]
    out[(mask & (1 << MASK_BITS["SAT"])) != 0] |= EUCLID_FLAGS["SAT"]
    out[(mask & (1 << MASK_BITS["CR"])) != 0] |= EUCLID_FLAGS["COSMIC"]
    return out


@register_writer("euclid")
def write_euclid(image: SimImage, directory: Path) -> Path:
    """Euclid-like MEF: primary + SCI / RMS / FLG."""
    band = image.band_info
    primary = fits.PrimaryHDU()
    for k, v, c in _exposure_cards(image):
        primary.header[k] = (v, c)
    filt = "VIS" if band.filter == "VIS" else f"NIR_{band.filter}"
    primary.header["FILTER"] = (filt, "filter")
    primary.header["MAGZERO"] = (image.zp_nominal, "[mag] AB zero point (electrons total)")
    primary.header["ZPAB"] = (image.zp_nominal, "[mag] AB zero point (electrons total)")
    primary.header["SATURATE"] = (image.saturation, "[e-] saturation level")
    primary.header["SKYLEVEL"] = (image.sky_level, "[e-] background subtracted")
    primary.header["BUNIT"] = ("electron", "pixel unit")
    flags = [(f"FLAG_{k}", v, f"FLG bit value of {k}") for k, v in EUCLID_FLAGS.items()]
    hdus = [
        primary,
        _hdu(image.science, "SCI", image, [("BUNIT", "electron", "pixel unit")]),
        _hdu(np.sqrt(image.variance).astype(np.float32), "RMS", image,
             [("BUNIT", "electron", "pixel unit")]),
        _hdu(euclid_flags(image.mask), "FLG", image, flags),
    ]
    name = f"EUC_{band.instrument}_SIM_{filt}_{image.image_id}.fits"
    return _write_fits(hdus, directory / name)


def roman_dq(mask: np.ndarray) -> np.ndarray:
    """Map internal mask bits to Roman pixel DQ bits."""
    out = np.zeros(mask.shape, dtype=np.uint32)
    bad = (mask & (1 << MASK_BITS["BAD"])) != 0
    out[bad] |= ROMAN_DQ["DEAD"] | ROMAN_DQ["DO_NOT_USE"]
    out[(mask & (1 << MASK_BITS["SAT"])) != 0] |= ROMAN_DQ["SATURATED"] | ROMAN_DQ["DO_NOT_USE"]
    out[(mask & (1 << MASK_BITS["CR"])) != 0] |= ROMAN_DQ["JUMP_DET"]
    return out


def roman_gwcs(image: SimImage):  # -> gwcs.WCS
    """GWCS of the written WCS (TAN, 0-based detector pixels), as Roman L2 files carry."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs

    w = image.wcs_written.wcs
    cd = w.cd if w.has_cd() else w.get_pc() * w.get_cdelt()[:, None]
    transform = (
        (models.Shift(-(w.crpix[0] - 1.0)) & models.Shift(-(w.crpix[1] - 1.0)))
        | models.AffineTransformation2D(matrix=np.array(cd), translation=[0.0, 0.0])
        | models.Pix2Sky_TAN()
        | models.RotateNative2Celestial(w.crval[0], w.crval[1], 180.0)
    )
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world", unit=(u.deg, u.deg))
    return gwcs_wcs.WCS([(detector, transform), (sky, None)])


def _roman_conversion(image: SimImage) -> float:
    """MJy/sr per DN/s, from the nominal zero point and the pixel solid angle."""
    band = image.band_info
    mjy = 10 ** (-0.4 * (image.zp_nominal - 31.4)) * 1e-15
    area_sr = (band.pixel_scale / 206264.80624709636) ** 2
    return float(mjy / area_sr)


def _write_roman_asdf(image: SimImage, directory: Path) -> Path:
    import roman_datamodels.datamodels as rdm

    ny, nx = image.shape
    with _future_dates_ok():
        return _fill_and_write_roman(rdm.ImageModel.create_fake_data(shape=(ny, nx)), image, directory)


def _fill_and_write_roman(model: Any, image: SimImage, directory: Path) -> Path:
    band = image.band_info
    start = Time(mjd_to_isot(image.mjd), format="isot", scale="utc")
    end = Time(mjd_to_isot(image.mjd + band.exptime / 86400.0), format="isot", scale="utc")
    name = f"r_sim_{image.image_id}_cal.asdf"
    m = model.meta
    m.filename = name
    m.file_date = end
    m.instrument.optical_element = band.filter
    m.instrument.detector = "WFI01"
    m.exposure.start_time = start
    m.exposure.end_time = end
    m.exposure.exposure_time = band.exptime
    m.exposure.effective_exposure_time = band.exptime
    m.exposure.nresultants = 6
    m.exposure.type = "WFI_IMAGE"
    m.photometry.conversion_megajanskys = _roman_conversion(image)
    m.photometry.conversion_megajanskys_uncertainty = 0.0
    m.photometry.pixel_area = (band.pixel_scale / 206264.80624709636) ** 2
    ra, dec = image.wcs_written.wcs.crval
    m.wcsinfo.ra_ref = float(ra)
    m.wcsinfo.dec_ref = float(dec)
    m.wcsinfo.roll_ref = float(image.systematics.get("pointing_rotation_deg", 0.0))
    m.pointing.target_ra = float(ra)
    m.pointing.target_dec = float(dec)
    m.wcs = roman_gwcs(image)
    model.data = image.science.astype(np.float32)
    model.err = np.sqrt(image.variance).astype(model.err.dtype)
    model.var_poisson = image.variance.astype(model.var_poisson.dtype)
    model.dq = roman_dq(image.mask)
    # reference-pixel planes: the real L2 shapes (resultants x rows x 4 columns),
    # not the image-sized placeholders create_fake_data makes
    ny, nx = image.shape
    model.amp33 = np.zeros((1, ny, 128), dtype=np.uint16)
    for side in ("left", "right"):
        setattr(model, f"border_ref_pix_{side}", np.zeros((1, ny, 4), dtype=np.float32))
        setattr(model, f"dq_border_ref_pix_{side}", np.zeros((ny, 4), dtype=np.uint32))
    for side in ("top", "bottom"):
        setattr(model, f"border_ref_pix_{side}", np.zeros((1, 4, nx), dtype=np.float32))
        setattr(model, f"dq_border_ref_pix_{side}", np.zeros((4, nx), dtype=np.uint32))
    # the RAD schema has no slot for these; extra meta keys are allowed and kept
    m["jspdb_sim"] = {
        "gain": band.gain,
        "read_noise": band.read_noise,
        "saturation": image.saturation,
        "magzero": image.zp_nominal,
        "sky_level": image.sky_level,
        "unit": image.image_unit,
    }
    path = directory / name
    af = model.open_asdf()
    af["roman"] = model._instance
    # asdf lists the extensions it used in set order, which changes between
    # processes; sort that list so the same field gives byte-identical files
    record_history = af._update_extension_history

    def _sorted_history(tree: Any, ctx: Any) -> None:
        record_history(tree, ctx)
        tree["history"]["extensions"].sort(
            key=lambda m: (str(m.get("extension_uri", "")), str(m.get("extension_class", "")))
        )

    af._update_extension_history = _sorted_history
    af.write_to(path, all_array_compression="lz4")
    af.close()
    model.close()
    return path


def _write_roman_fits(image: SimImage, directory: Path) -> Path:
    band = image.band_info
    primary = fits.PrimaryHDU()
    for k, v, c in _exposure_cards(image):
        primary.header[k] = (v, c)
    primary.header["OPT_ELEM"] = (band.filter, "optical element (filter)")
    primary.header["FILTER"] = (band.filter, "filter")
    primary.header["DETECTOR"] = ("WFI01", "detector")
    primary.header["PHOTMJSR"] = (_roman_conversion(image), "[MJy/sr per DN/s] conversion")
    primary.header["MAGZERO"] = (image.zp_nominal, "[mag] AB zero point (DN/s total)")
    primary.header["SATURATE"] = (image.saturation, "[DN/s] saturation level")
    primary.header["BUNIT"] = ("DN/s", "pixel unit")
    hdus = [
        primary,
        _hdu(image.science, "SCI", image, [("BUNIT", "DN/s", "pixel unit")]),
        _hdu(np.sqrt(image.variance).astype(np.float32), "ERR", image, []),
        _hdu(roman_dq(image.mask).astype(np.int64), "DQ", image,
             [(f"DQ_{k[:5]}", v, k) for k, v in ROMAN_DQ.items()]),
    ]
    return _write_fits(hdus, directory / f"r_sim_{image.image_id}_cal.fits")


def roman_asdf_available() -> bool:
    """True when roman_datamodels (and so ASDF output) can be used."""
    try:
        import roman_datamodels.datamodels  # noqa: F401
    except ImportError:
        return False
    return True


@register_writer("roman")
def write_roman(image: SimImage, directory: Path) -> Path:
    """Roman WFI L2: ASDF via roman_datamodels when available, FITS otherwise."""
    if roman_asdf_available():
        return _write_roman_asdf(image, directory)
    return _write_roman_fits(image, directory)


# --- the whole field ---------------------------------------------------------


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def write_json(data: Any, path: Path) -> Path:
    """Write deterministic, indented JSON."""
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=_json_default) + "\n")
    return path


def write_field(
    field: Field, out_dir: Path | str, progress: Callable[[int, int, str], None] | None = None
) -> dict[str, Any]:
    """Write a simulated field to ``out_dir``.

    Layout: ``truth.parquet``, ``reference.parquet``, ``field.json``,
    ``images/<survey>/<file>`` and ``truth/<image_id>.json``.

    Returns
    -------
    dict
        The file index also written to ``field.json`` (paths relative to ``out_dir``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    meta = {"spec": field.spec.to_dict(), "summary": field.summary}
    write_table(field.truth, out / "truth.parquet", meta)
    write_table(field.reference, out / "reference.parquet", {"spec": field.spec.to_dict()})
    index = []
    n = len(field.images)
    for k, image in enumerate(field.images, start=1):
        path = write_image(image, out / "images" / image.survey)
        truth_path = write_json(image.truth_record(), out / "truth" / f"{image.image_id}.json")
        index.append({
            "image_id": image.image_id,
            "survey": image.survey,
            "band": image.band,
            "filter": get_band(image.band).filter,
            "epoch": image.epoch,
            "mjd": image.mjd,
            "file": str(path.relative_to(out)),
            "truth": str(truth_path.relative_to(out)),
        })
        if progress:
            progress(k, n, image.image_id)
    doc = {
        "spec": field.spec.to_dict(),
        "summary": field.summary,
        "truth_catalog": "truth.parquet",
        "reference_catalog": "reference.parquet",
        "images": index,
    }
    write_json(doc, out / "field.json")
    return doc
