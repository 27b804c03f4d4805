"""Batch ingest of survey images: parallel reading, batched transactional writes.

Reading (headers, WCS checks, checksums) runs in a process pool; writing runs
in the calling process, one transaction per batch. A file goes in once: the
same bytes again (anywhere) are skipped by checksum; a changed file at a path
already ingested is refused unless ``replace=True``, which keeps the old
version in ``jsp.image_version``. Files copied into the datastore by a batch
that rolls back are removed again, so a failure leaves nothing partial.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cdshealpix.nested as chp
import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from jspdb.errors import IngestError
from jspdb.healpix import boundary_spoly, polygon_ranges
from jspdb.ingest import euclid, lsst, roman  # noqa: F401  (register the built-in adapters)
from jspdb.ingest.adapters import ADAPTERS, ImageRecord, get_adapter, identify
from jspdb.ingest.datastore import StoredFile, remove_created, sha256_of, store_file
from jspdb.ingest.wcs import footprint, pixel_scale_arcsec, spoly_literal, wcs_to_text

__all__ = ["IngestReport", "PreparedImage", "expand_paths", "ingest_images", "prepare_image", "tiles_of"]

_SUFFIXES = (".fits", ".fit", ".fits.fz", ".fz", ".fits.gz", ".asdf")


@dataclass
class PreparedImage:
    """Everything needed to write one image, computed away from the database."""

    record: ImageRecord
    adapter: str
    sha256: dict[str, str]  # file path -> checksum (science file and plane files)
    sizes: dict[str, int]
    footprint_ra: list[float]
    footprint_dec: list[float]


@dataclass
class IngestReport:
    """What went in, what was skipped and why, what failed and why."""

    ingested: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, default=str))

    @property
    def ok(self) -> bool:
        return not self.failed


def expand_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files to ingest: the paths given, directories searched recursively (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(_SUFFIXES))
        else:
            out.append(p)
    return out


def prepare_image(path: Path, survey: str = "auto") -> PreparedImage:
    """Read, check and checksum one image (no database). Raises `IngestError`."""
    path = Path(path)
    if not os.access(path, os.R_OK) and path.exists():
        raise IngestError(f"{path}: unreadable (permission denied)")
    adapter = identify(path) if survey == "auto" else get_adapter(survey)
    if survey != "auto" and path.suffix.lower() != ".asdf":
        from jspdb.ingest.adapters import open_fits

        with open_fits(path, lazy=True) as hdul:
            primary = hdul[0].header
        if not adapter.identify(path, primary):
            raise IngestError(f"{path}: not a {survey} file (header does not match the {survey} convention)")
    rec = adapter.describe(path)
    files = {str(rec.path)} | {str(p.path) for p in rec.planes}
    sha = {f: sha256_of(Path(f)) for f in sorted(files)}
    sizes = {f: Path(f).stat().st_size for f in sorted(files)}
    ra, dec = footprint(rec.wcs, (rec.naxis2, rec.naxis1), per_edge=2)
    return PreparedImage(record=rec, adapter=adapter.name, sha256=sha, sizes=sizes,
                         footprint_ra=ra.tolist(), footprint_dec=dec.tolist())


def _prepare_safe(args: tuple[Path, str]) -> PreparedImage | str:
    try:
        return prepare_image(*args)
    except IngestError as exc:
        return str(exc)
    except Exception as exc:  # a library failing on a strange file must not stop the batch
        return f"{args[0]}: unexpected {type(exc).__name__}: {exc}"


def tiles_of(ra: list[float], dec: list[float], order: int) -> list[int]:
    """Nested pixels at ``order`` that the polygon (degrees) touches."""
    ranges = polygon_ranges(ra, dec, order)
    shift = 2 * (29 - order)
    pix: list[int] = []
    for lo, hi in ranges:
        pix += range(int(lo) >> shift, int(hi) >> shift)
    return pix


def _band_ids(conn: psycopg.Connection) -> dict[tuple[str, str], tuple[int, int, float, float]]:
    """(survey, band) -> (band_id, survey_id, wl_min_nm, wl_max_nm), read once per batch."""
    rows = conn.execute("SELECT s.name, b.name, b.band_id, s.survey_id, b.wl_min_nm, b.wl_max_nm FROM jsp.band b "
                        "JOIN jsp.survey s USING (survey_id)").fetchall()
    return {(s, b): (bid, sid, lo, hi) for s, b, bid, sid, lo, hi in rows}


def _ensure_generic_survey(conn: psycopg.Connection, adapter) -> None:
    """Register a generic mapping's survey, instrument and bands if new."""
    s = adapter.survey
    row = conn.execute("SELECT survey_id FROM jsp.survey WHERE name = %s", (adapter.name,)).fetchone()
    if row is None:
        sid = conn.execute("INSERT INTO jsp.survey (survey_id, name, facility, platform, description) "
                           "SELECT coalesce(max(survey_id), 0) + 1, %s, %s, %s, %s FROM jsp.survey "
                           "RETURNING survey_id",
                           (adapter.name, s.get("facility", adapter.name), s.get("platform", "ground"),
                            s.get("description"))).fetchone()[0]
    else:
        sid = row[0]
    ins = conn.execute("SELECT instrument_id FROM jsp.instrument WHERE survey_id = %s", (sid,)).fetchone()
    if ins is None:
        iid = conn.execute("INSERT INTO jsp.instrument (instrument_id, survey_id, name, pixel_scale_arcsec) "
                           "SELECT coalesce(max(instrument_id), 0) + 1, %s, %s, %s FROM jsp.instrument "
                           "RETURNING instrument_id",
                           (sid, s.get("instrument", adapter.name), float(s.get("pixel_scale_arcsec", 1.0)))
                           ).fetchone()[0]
    else:
        iid = ins[0]
    for b in adapter.bands():
        conn.execute("INSERT INTO jsp.band (band_id, survey_id, instrument_id, name, wl_min_nm, wl_eff_nm, wl_max_nm) "
                     "SELECT coalesce(max(band_id), 0) + 1, %s, %s, %s, %s, %s, %s FROM jsp.band "
                     "WHERE NOT EXISTS (SELECT 1 FROM jsp.band WHERE survey_id = %s AND name = %s)",
                     (sid, iid, b["band"], b["wl_min_nm"], b["wl_eff_nm"], b["wl_max_nm"], sid, b["band"]))


def _ensure_tiles(conn: psycopg.Connection, order: int, pix: list[int]) -> None:
    if not pix:
        return
    lon, lat = chp.healpix_to_lonlat(np.asarray(pix, dtype=np.uint64), order)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO jsp.tile (tile_order, ipix, ra_center, dec_center, boundary) "
            "VALUES (%s, %s, %s, %s, %s::spoly) ON CONFLICT DO NOTHING",
            [(order, p, float(a), float(d), boundary_spoly(p, order))
             for p, a, d in zip(pix, lon.deg, lat.deg, strict=True)],
        )


def _write_one(conn: psycopg.Connection, prep: PreparedImage, bands, *, tile_order: int, datastore: Path,
               mode: str, replace: bool, created: list[StoredFile], report: IngestReport) -> None:
    rec = prep.record
    sci_sha = prep.sha256[str(rec.path)]
    with conn.cursor(row_factory=dict_row) as cur:
        same = cur.execute("SELECT image_id, source_path FROM jsp.image WHERE checksum_sha256 = %s",
                           (sci_sha,)).fetchone()
        if same is not None:
            report.skipped.append({"path": str(rec.path), "reason": f"already ingested as image {same['image_id']}"
                                   f" (same SHA-256, from {same['source_path']})"})
            return
        old = cur.execute("SELECT * FROM jsp.image WHERE source_path = %s", (str(rec.path.resolve()),)).fetchone()
    if old is not None and not replace:
        raise IngestError(f"{rec.path}: changed since it was ingested as image {old['image_id']} "
                          f"(SHA-256 differs); use --replace to ingest the new version")
    key = (rec.survey, rec.band)
    if key not in bands:
        raise IngestError(f"{rec.path}: unknown band {rec.band!r} of survey {rec.survey!r} in the database")
    band_id, survey_id, wl_min, wl_max = bands[key]
    stored = store_file(rec.path, sci_sha, datastore, rec.survey, rec.band, mode)
    created.append(stored)
    plane_files: dict[str, StoredFile] = {str(rec.path): stored}
    for p in rec.planes:
        if str(p.path) not in plane_files:
            sf = store_file(p.path, prep.sha256[str(p.path)], datastore, rec.survey, rec.band, mode)
            created.append(sf)
            plane_files[str(p.path)] = sf
    w = rec.wcs
    c_ra, c_dec = w.pixel_to_world_values((rec.naxis1 - 1) / 2.0, (rec.naxis2 - 1) / 2.0)
    c_ra = float(c_ra) % 360.0
    values = dict(
        survey_id=survey_id, band_id=band_id, kind=rec.kind, obs_id=rec.obs_id, uri=stored.uri,
        checksum_sha256=sci_sha, size_bytes=prep.sizes[str(rec.path)], naxis1=rec.naxis1, naxis2=rec.naxis2,
        wcs_header=wcs_to_text(w), pixel_scale_arcsec=pixel_scale_arcsec(w),
        ra_center=c_ra, dec_center=float(c_dec), center=f"({c_ra!r}d,{float(c_dec)!r}d)",
        footprint=spoly_literal(np.array(prep.footprint_ra), np.array(prep.footprint_dec)),
        t_min_mjd=rec.t_min_mjd, t_max_mjd=rec.t_max_mjd, exptime_s=rec.exptime_s, wl_min_nm=wl_min,
        wl_max_nm=wl_max, psf_fwhm_arcsec=rec.psf_fwhm_arcsec, zeropoint_mag=rec.zeropoint_mag,
        has_variance=rec.has_variance, has_mask=rec.has_mask, source_path=str(rec.path.resolve()),
        saturation=rec.saturation, gain=rec.gain, header=Jsonb(rec.header),
    )
    casts = {"center": "::spoint", "footprint": "::spoly"}
    if old is not None:
        conn.execute(
            "INSERT INTO jsp.image_version (image_id, source_path, uri, checksum_sha256, size_bytes, record) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (old["image_id"], old["source_path"], old["uri"], old["checksum_sha256"], old["size_bytes"],
             Jsonb({k: (v if isinstance(v, int | float | str | bool | dict | type(None)) else str(v))
                    for k, v in old.items()})),
        )
        sets = ", ".join(f"{k} = %({k})s{casts.get(k, '')}" for k in values)
        conn.execute(f"UPDATE jsp.image SET {sets}, ingested_at = now() WHERE image_id = %(image_id)s",
                     {**values, "image_id": old["image_id"]})
        image_id = old["image_id"]
        conn.execute("DELETE FROM jsp.image_plane WHERE image_id = %s", (image_id,))
        conn.execute("DELETE FROM jsp.image_tile WHERE image_id = %s", (image_id,))
        report.warnings.append({"path": str(rec.path), "reason": f"replaced image {image_id}; "
                                f"old version kept in jsp.image_version"})
    else:
        cols = ", ".join(values)
        vals = ", ".join(f"%({k})s{casts.get(k, '')}" for k in values)
        image_id = conn.execute(f"INSERT INTO jsp.image ({cols}) VALUES ({vals}) RETURNING image_id",
                                values).fetchone()[0]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO jsp.image_plane (image_id, plane, uri, hdu, convention, checksum_sha256, size_bytes) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(image_id, p.plane, plane_files[str(p.path)].uri, p.hdu, p.convention,
              prep.sha256[str(p.path)], prep.sizes[str(p.path)]) for p in rec.planes],
        )
    pix = tiles_of(prep.footprint_ra, prep.footprint_dec, tile_order)
    _ensure_tiles(conn, tile_order, pix)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO jsp.image_tile (image_id, tile_order, tile_ipix) VALUES (%s, %s, %s)",
                        [(image_id, tile_order, p) for p in pix])
    for missing in ("variance", "mask"):
        if not any(p.plane == missing for p in rec.planes):
            report.warnings.append({"path": str(rec.path), "reason": f"no {missing} plane: ingested with "
                                    f"has_{missing} = false"})
    report.ingested.append({"path": str(rec.path), "image_id": image_id, "survey": rec.survey, "band": rec.band,
                            "tiles": len(pix), "uri": stored.uri})


def ingest_images(
    conn: psycopg.Connection,
    paths: Iterable[Path | str],
    *,
    tile_order: int,
    datastore: Path,
    survey: str = "auto",
    mode: str = "copy",
    workers: int = 1,
    batch_size: int = 50,
    replace: bool = False,
    strict: bool = False,
    on_error: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest image files into ``jsp.image`` and the datastore.

    Parameters
    ----------
    conn
        psycopg 3 connection (each batch is committed on it).
    paths
        Files or directories (searched recursively for FITS/ASDF files).
    tile_order
        HEALPix order of processing tiles recorded in ``jsp.image_tile``.
    datastore
        Datastore root (copy mode writes there).
    survey
        Adapter name, or ``auto`` to recognise each file.
    mode
        ``copy`` or ``reference`` (see `jspdb.ingest.datastore`).
    workers
        Processes reading files in parallel.
    batch_size
        Images per transaction.
    replace
        Accept changed files at already-ingested paths (old version kept).
    strict
        Stop at the first bad file (nothing of its batch is written).
    on_error
        Called with one line per file that failed.
    progress
        Called with 1 after each file is handled (written, skipped or failed).

    Returns
    -------
    IngestReport
    """
    files = expand_paths(paths)
    report = IngestReport()
    # Plane files of other images (Euclid MER RMS/FLAG) are not images.
    companions: dict[str, str] = {}
    for f in files:
        for adapter in ADAPTERS.values():
            for c in adapter.companions(f):
                companions[str(c)] = str(f)
    todo = []
    for f in files:
        if str(f) in companions:
            report.skipped.append({"path": str(f), "reason": f"plane of {companions[str(f)]}"})
            if progress:
                progress(1)
        else:
            todo.append(f)

    def fail(msg: str, path: Path) -> None:
        report.failed.append({"path": str(path), "reason": msg})
        if on_error:
            on_error(msg)
        if strict:
            raise IngestError(msg)

    generic_done: set[str] = set()
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    args = [(f, survey) for f in todo]
    # Readers run ahead of the writer: results arrive in order while earlier
    # batches are being written.
    results = pool.map(_prepare_safe, args, chunksize=4) if pool else map(_prepare_safe, args)
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            good: list[PreparedImage] = []
            for f in batch:
                res = next(results)
                if isinstance(res, str):
                    fail(res, f)
                    if progress:
                        progress(1)
                else:
                    good.append(res)
            created: list[StoredFile] = []
            batch_report = IngestReport()
            try:
                with conn.transaction():
                    for prep in good:
                        ad = ADAPTERS[prep.adapter]
                        if hasattr(ad, "bands") and ad.name not in generic_done:
                            _ensure_generic_survey(conn, ad)
                            generic_done.add(ad.name)
                    bands = _band_ids(conn)
                    for prep in good:
                        try:
                            with conn.transaction():  # savepoint: one bad file does not spoil the batch
                                _write_one(conn, prep, bands, tile_order=tile_order, datastore=datastore,
                                           mode=mode, replace=replace, created=created, report=batch_report)
                        except IngestError as exc:
                            fail(str(exc), prep.record.path)
                        if progress:
                            progress(1)
                conn.commit()
            except psycopg.OperationalError as exc:
                remove_created(created)
                raise IngestError(
                    f"database connection lost while writing batch {start // batch_size + 1} "
                    f"({len(good)} images): the batch was rolled back; rerun to complete it: {exc}") from exc
            except BaseException:
                remove_created(created)
                raise
            for k in ("ingested", "skipped", "warnings"):
                getattr(report, k).extend(getattr(batch_report, k))
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    return report
