"""Schema of the warehouse registry (schema ``jsp``), as SQLAlchemy 2 models.

These models are the single description Alembic's drift check compares the
database against. Per-release catalog schemas (``dr1``, ...) are created by
SQL functions in ``sql/`` (`jspdb.db.release`) and are not modelled here.

Units: angles in degrees unless the column name says otherwise (``_arcsec``,
``_mas``), wavelengths in nm, times in MJD (TAI), fluxes in nJy, magnitudes AB.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from jspdb.db.types import SPoint, SPoly

__all__ = [
    "AstrometricSolution",
    "Band",
    "Base",
    "Image",
    "ImagePlane",
    "ImageTile",
    "ImageVersion",
    "RefSynPhot",
    "Instrument",
    "PhotometricSolution",
    "PsfModel",
    "RefSource",
    "Release",
    "SCHEMA",
    "Survey",
    "Tile",
    "TileJob",
]

SCHEMA = "jsp"


class Base(DeclarativeBase):
    pass


class Survey(Base):
    """A survey (LSST, Euclid, Roman, or a generic one registered later)."""

    __tablename__ = "survey"
    __table_args__ = (
        CheckConstraint("platform IN ('ground', 'space')", name="survey_platform_check"),
        {"schema": SCHEMA, "comment": "Surveys whose images the warehouse holds"},
    )

    survey_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True, comment="Short name, e.g. lsst")
    facility: Mapped[str] = mapped_column(Text, comment="Observatory / telescope")
    platform: Mapped[str] = mapped_column(Text, comment="ground or space")
    description: Mapped[str | None] = mapped_column(Text)


class Instrument(Base):
    """A camera of a survey."""

    __tablename__ = "instrument"
    __table_args__ = (UniqueConstraint("survey_id", "name"), {"schema": SCHEMA})

    instrument_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.survey.survey_id"))
    name: Mapped[str] = mapped_column(Text, comment="e.g. LSSTCam, VIS, NISP, WFI")
    pixel_scale_arcsec: Mapped[float] = mapped_column(Float, comment="Nominal pixel scale, arcsec")


class Band(Base):
    """A photometric band with its wavelength range (nm)."""

    __tablename__ = "band"
    __table_args__ = (
        UniqueConstraint("survey_id", "name"),
        CheckConstraint("wl_min_nm < wl_eff_nm AND wl_eff_nm < wl_max_nm", name="band_wl_order"),
        {"schema": SCHEMA},
    )

    band_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.survey.survey_id"))
    instrument_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.instrument.instrument_id"))
    name: Mapped[str] = mapped_column(Text, comment="Band name as the survey writes it (r, VIS, F158)")
    wl_min_nm: Mapped[float] = mapped_column(Float, comment="Blue edge, nm")
    wl_eff_nm: Mapped[float] = mapped_column(Float, comment="Effective wavelength, nm")
    wl_max_nm: Mapped[float] = mapped_column(Float, comment="Red edge, nm")


class Release(Base):
    """A concordance release (DR1, ...): one PostgreSQL schema of its own."""

    __tablename__ = "release"
    __table_args__ = (
        CheckConstraint("state IN ('staging', 'public', 'retired')", name="release_state_check"),
        CheckConstraint("name ~ '^[a-z][a-z0-9_]{0,30}$'", name="release_name_check"),
        {"schema": SCHEMA},
    )

    release_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True, comment="Release name = its schema name")
    state: Mapped[str] = mapped_column(Text, server_default="staging")
    software_version: Mapped[str] = mapped_column(Text)
    config: Mapped[dict] = mapped_column(JSONB, server_default="{}", comment="Processing configuration")
    partition_order: Mapped[int] = mapped_column(SmallInteger, comment="HEALPix order of catalog partitions")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Tile(Base):
    """A processing tile: one HEALPix pixel (nested) at the tile order."""

    __tablename__ = "tile"
    __table_args__ = (
        Index("tile_boundary_gist", "boundary", postgresql_using="gist"),
        {"schema": SCHEMA},
    )

    tile_order: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    ipix: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ra_center: Mapped[float] = mapped_column(Float, comment="Pixel centre RA, deg")
    dec_center: Mapped[float] = mapped_column(Float, comment="Pixel centre Dec, deg")
    boundary: Mapped[str] = mapped_column(SPoly, comment="Pixel boundary polygon")


class Image(Base):
    """One ingested or produced image, with ObsCore-aligned metadata."""

    __tablename__ = "image"
    __table_args__ = (
        CheckConstraint("kind IN ('single_epoch', 'coadd', 'difference', 'cutout')", name="image_kind_check"),
        CheckConstraint("t_min_mjd <= t_max_mjd", name="image_time_order"),
        CheckConstraint("checksum_sha256 ~ '^[0-9a-f]{64}$'", name="image_checksum_hex"),
        Index("image_footprint_gist", "footprint", postgresql_using="gist"),
        Index("image_band_idx", "band_id"),
        Index("image_checksum_key", "checksum_sha256", unique=True),
        Index("image_source_path_idx", "source_path"),
        {"schema": SCHEMA, "comment": "Images (ObsCore-aligned metadata)"},
    )

    image_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.survey.survey_id"))
    band_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.band.band_id"))
    release_id: Mapped[int | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.release.release_id"), comment="Producing release (coadds); NULL for raw inputs"
    )
    kind: Mapped[str] = mapped_column(Text, comment="single_epoch, coadd, difference, cutout")
    obs_id: Mapped[str] = mapped_column(Text, comment="Survey's own identifier of the exposure/product")
    uri: Mapped[str] = mapped_column(Text, unique=True, comment="Datastore URI of the file")
    checksum_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    naxis1: Mapped[int] = mapped_column(Integer, comment="Width, pixels")
    naxis2: Mapped[int] = mapped_column(Integer, comment="Height, pixels")
    wcs_header: Mapped[str] = mapped_column(Text, comment="FITS WCS header as delivered")
    pixel_scale_arcsec: Mapped[float] = mapped_column(Float)
    ra_center: Mapped[float] = mapped_column(Float, comment="deg")
    dec_center: Mapped[float] = mapped_column(Float, comment="deg")
    center: Mapped[str] = mapped_column(SPoint)
    footprint: Mapped[str] = mapped_column(SPoly)
    t_min_mjd: Mapped[float] = mapped_column(Float)
    t_max_mjd: Mapped[float] = mapped_column(Float)
    exptime_s: Mapped[float] = mapped_column(Float)
    wl_min_nm: Mapped[float] = mapped_column(Float)
    wl_max_nm: Mapped[float] = mapped_column(Float)
    psf_fwhm_arcsec: Mapped[float | None] = mapped_column(Float)
    depth5_mag: Mapped[float | None] = mapped_column(Float, comment="5-sigma point-source depth, AB mag")
    zeropoint_mag: Mapped[float | None] = mapped_column(Float, comment="Nominal AB zero point, mag")
    has_variance: Mapped[bool] = mapped_column(server_default="true")
    has_mask: Mapped[bool] = mapped_column(server_default="true")
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    source_path: Mapped[str | None] = mapped_column(Text, comment="Path the file was ingested from")
    saturation: Mapped[float | None] = mapped_column(Float, comment="Saturation level, image units")
    gain: Mapped[float | None] = mapped_column(Float, comment="e-/ADU")
    header: Mapped[dict | None] = mapped_column(JSONB, comment="Primary + science header cards as delivered")


class ImagePlane(Base):
    """Where each plane (science, variance, mask) of an image lives."""

    __tablename__ = "image_plane"
    __table_args__ = (
        CheckConstraint("plane IN ('science', 'variance', 'mask')", name="image_plane_kind_check"),
        {"schema": SCHEMA, "comment": "Planes of an image: file, HDU and how to read them"},
    )

    image_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.image.image_id", ondelete="CASCADE"),
                                          primary_key=True)
    plane: Mapped[str] = mapped_column(Text, primary_key=True)
    uri: Mapped[str] = mapped_column(Text, comment="Datastore URI of the file holding the plane")
    hdu: Mapped[str] = mapped_column(Text, comment="HDU name or index (or ASDF key)")
    convention: Mapped[str] = mapped_column(Text, comment="e.g. variance, rms, rubin-mask, euclid-flag, roman-dq")
    checksum_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class ImageTile(Base):
    """Which processing tiles an image touches."""

    __tablename__ = "image_tile"
    __table_args__ = (Index("image_tile_tile_idx", "tile_order", "tile_ipix"), {"schema": SCHEMA})

    image_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.image.image_id", ondelete="CASCADE"),
                                          primary_key=True)
    tile_order: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    tile_ipix: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class ImageVersion(Base):
    """Earlier versions of an image replaced with ``--replace`` (kept for provenance)."""

    __tablename__ = "image_version"
    __table_args__ = ({"schema": SCHEMA},)

    version_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    image_id: Mapped[int] = mapped_column(BigInteger, comment="image_id the version belonged to")
    source_path: Mapped[str | None] = mapped_column(Text)
    uri: Mapped[str] = mapped_column(Text)
    checksum_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    record: Mapped[dict] = mapped_column(JSONB, comment="The image row as it was")
    replaced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RefSynPhot(Base):
    """Synthetic photometry of reference stars in survey bands (as Gaia XP's)."""

    __tablename__ = "refcat_synphot"
    __table_args__ = ({"schema": SCHEMA, "postgresql_partition_by": "RANGE (hpx29)",
                       "comment": "Reference-star magnitudes in survey bands, AB"},)

    hpx29: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    band_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.band.band_id"), primary_key=True)
    mag: Mapped[float] = mapped_column(Float, comment="AB mag")
    mag_err: Mapped[float] = mapped_column(Float, comment="mag")


class RefSource(Base):
    """Reference catalog (Gaia-like), RANGE-partitioned on ``hpx29``."""

    __tablename__ = "refcat"
    __table_args__ = (
        CheckConstraint("dec BETWEEN -90 AND 90", name="refcat_dec_range"),
        CheckConstraint("ra >= 0 AND ra < 360", name="refcat_ra_range"),
        {
            "schema": SCHEMA,
            "postgresql_partition_by": "RANGE (hpx29)",
            "comment": "Astrometric/photometric reference catalog at its reference epoch",
        },
    )

    hpx29: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False,
                                       comment="Nested HEALPix index, order 29")
    source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ra: Mapped[float] = mapped_column(Float, comment="deg, at ref_epoch")
    dec: Mapped[float] = mapped_column(Float, comment="deg, at ref_epoch")
    ra_err_mas: Mapped[float] = mapped_column(Float, comment="mas (times cos dec)")
    dec_err_mas: Mapped[float] = mapped_column(Float, comment="mas")
    ref_epoch: Mapped[float] = mapped_column(Float, comment="Julian year, e.g. 2016.0")
    pmra: Mapped[float | None] = mapped_column(Float, comment="mas/yr (times cos dec)")
    pmdec: Mapped[float | None] = mapped_column(Float, comment="mas/yr")
    pmra_err: Mapped[float | None] = mapped_column(Float, comment="mas/yr")
    pmdec_err: Mapped[float | None] = mapped_column(Float, comment="mas/yr")
    parallax: Mapped[float | None] = mapped_column(Float, comment="mas")
    parallax_err: Mapped[float | None] = mapped_column(Float, comment="mas")
    g_mag: Mapped[float | None] = mapped_column(Float, comment="G, AB mag")
    g_mag_err: Mapped[float | None] = mapped_column(Float, comment="mag")
    bp_mag: Mapped[float | None] = mapped_column(Float, comment="BP, AB mag")
    rp_mag: Mapped[float | None] = mapped_column(Float, comment="RP, AB mag")


class TileJob(Base):
    """One (release, step, tile or image) unit of work and its history."""

    __tablename__ = "tile_job"
    __table_args__ = (
        CheckConstraint(
            "state IN ('pending', 'queued', 'running', 'done', 'failed', 'skipped')", name="tile_job_state_check"
        ),
        UniqueConstraint(
            "release_id", "step", "tile_order", "tile_ipix", "image_id",
            name="tile_job_unit_key", postgresql_nulls_not_distinct=True,
        ),
        ForeignKeyConstraint(["tile_order", "tile_ipix"], [f"{SCHEMA}.tile.tile_order", f"{SCHEMA}.tile.ipix"]),
        Index("tile_job_state_idx", "release_id", "step", "state"),
        {"schema": SCHEMA},
    )

    job_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(Text)
    tile_order: Mapped[int | None] = mapped_column(SmallInteger)
    tile_ipix: Mapped[int | None] = mapped_column(BigInteger)
    image_id: Mapped[int | None] = mapped_column(ForeignKey(f"{SCHEMA}.image.image_id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    worker: Mapped[str | None] = mapped_column(Text, comment="hostname:pid of the last worker")
    input_fingerprint: Mapped[str | None] = mapped_column(Text, comment="Hash of the inputs of the last success")
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict | None] = mapped_column(
        JSONB, comment="The step's summary of its last success (counts, rms, QA files)")
    error: Mapped[str | None] = mapped_column(Text)


class AstrometricSolution(Base):
    """Per (release, image): WCS correction against the reference catalog."""

    __tablename__ = "astrometric_solution"
    __table_args__ = ({"schema": SCHEMA},)

    release_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"),
                                            primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.image.image_id", ondelete="CASCADE"),
                                          primary_key=True)
    model: Mapped[str] = mapped_column(Text, comment="e.g. affine, poly3")
    params: Mapped[dict] = mapped_column(JSONB)
    wcs_header: Mapped[str] = mapped_column(Text, comment="Corrected FITS WCS")
    n_stars: Mapped[int] = mapped_column(Integer)
    rms_mas: Mapped[float] = mapped_column(Float, comment="Residual rms of matched stars, mas")
    sigma_mas: Mapped[float] = mapped_column(Float, comment="Estimated position uncertainty, mas")
    tie_dra_mas: Mapped[float | None] = mapped_column(
        Float, comment="Shift in RA cos(Dec) added by the cross-image tie to every sky position, mas")
    tie_ddec_mas: Mapped[float | None] = mapped_column(
        Float, comment="Shift in Dec added by the cross-image tie to every sky position, mas")
    tie_err_mas: Mapped[float | None] = mapped_column(Float, comment="Uncertainty of the tie shift per axis, mas")
    flags: Mapped[int] = mapped_column(Integer, server_default="0")


class PhotometricSolution(Base):
    """Per (release, image): zero point tied to the common nJy scale."""

    __tablename__ = "photometric_solution"
    __table_args__ = ({"schema": SCHEMA},)

    release_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"),
                                            primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.image.image_id", ondelete="CASCADE"),
                                          primary_key=True)
    zeropoint_mag: Mapped[float] = mapped_column(Float, comment="AB mag giving 1 image count, per image")
    zeropoint_err_mag: Mapped[float] = mapped_column(Float)
    colour_term: Mapped[float | None] = mapped_column(Float)
    colour_ref: Mapped[str | None] = mapped_column(Text, comment="Colour the term multiplies, e.g. bp-rp")
    n_stars: Mapped[int] = mapped_column(Integer)
    tie_offset_mag: Mapped[float | None] = mapped_column(
        Float, comment="Offset added by the cross-image tie (tied zero point = zeropoint_mag + this)")
    tie_err_mag: Mapped[float | None] = mapped_column(Float, comment="Uncertainty of the tie offset, mag")
    flags: Mapped[int] = mapped_column(Integer, server_default="0")


class PsfModel(Base):
    """Per (release, image): a PSF model that can be evaluated back."""

    __tablename__ = "psf_model"
    __table_args__ = ({"schema": SCHEMA},)

    release_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.release.release_id", ondelete="CASCADE"),
                                            primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.image.image_id", ondelete="CASCADE"),
                                          primary_key=True)
    model_kind: Mapped[str] = mapped_column(Text, comment="e.g. galsim-moffat-poly2, pixel-grid")
    params: Mapped[dict] = mapped_column(JSONB)
    serialized: Mapped[bytes] = mapped_column(LargeBinary, comment="Model serialization (see jspdb.psf)")
    fwhm_arcsec: Mapped[float] = mapped_column(Float)
    n_stars: Mapped[int] = mapped_column(Integer)


# Access-tier tables (TAP users, UWS jobs, query log) share this Base for the drift check.
from jspdb.db import models_access  # noqa: E402,F401
