"""Reference catalogs from Parquet, FITS tables or CSV into ``jsp.refcat``.

Gaia archive column names are understood (``ra_error``, ``parallax_error``,
``phot_g_mean_mag``, ...), as are synthetic magnitudes in survey bands named
``mag_<survey>_<band>`` / ``magerr_<survey>_<band>`` (as the simulator and
Gaia XP synthetic photometry provide), which go to ``jsp.refcat_synphot``.
Star and photometry rows go in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
from astropy.table import Table

from jspdb.db.copy import copy_columns
from jspdb.errors import IngestError, LoadError
from jspdb.refcat import REFCAT_COLUMNS, load_refcat, validate_refcat

__all__ = ["GAIA_NAMES", "ingest_refcat", "read_refcat_file"]

#: Gaia archive name -> jsp.refcat column.
GAIA_NAMES = {
    "ra_error": "ra_err_mas", "dec_error": "dec_err_mas", "pmra_error": "pmra_err", "pmdec_error": "pmdec_err",
    "parallax_error": "parallax_err", "phot_g_mean_mag": "g_mag", "phot_bp_mean_mag": "bp_mag",
    "phot_rp_mean_mag": "rp_mag", "phot_g_mean_mag_error": "g_mag_err",
}
_SYNPHOT = re.compile(r"^mag_(?P<survey>[a-z0-9]+)_(?P<band>[a-z0-9]+)$", re.I)


def read_refcat_file(path: Path) -> Table:
    """Read a catalog file (Parquet, FITS table, CSV/ECSV) with astropy."""
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    suffix = path.name.lower()
    fmt = ("parquet" if suffix.endswith((".parquet", ".pq")) else
           "fits" if suffix.endswith((".fits", ".fit", ".fits.gz")) else
           "ascii.ecsv" if suffix.endswith(".ecsv") else
           "ascii.csv" if suffix.endswith(".csv") else None)
    if fmt is None:
        raise IngestError(f"{path}: unknown catalog format (use .parquet, .fits, .csv or .ecsv)")
    try:
        return Table.read(path, format=fmt)
    except Exception as exc:  # readers raise many types for damaged files
        raise IngestError(f"{path}: cannot read as {fmt}: {exc}") from exc


def _column(t: Table, name: str) -> np.ndarray:
    col = t[name]
    if hasattr(col, "mask") and np.any(col.mask):
        return np.ma.filled(col.astype(float), np.nan)
    return np.asarray(col)


def ingest_refcat(
    conn: psycopg.Connection, path: Path, *, progress: Callable[[int], None] | None = None
) -> dict[str, object]:
    """Load a reference catalog file; returns counts and the columns ignored.

    Raises
    ------
    IngestError
        For unreadable files, missing columns or bad rows; nothing is loaded.
    """
    t = read_refcat_file(path)
    cols: dict[str, np.ndarray] = {}
    synphot: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    ignored: list[str] = []
    for name in t.colnames:
        target = GAIA_NAMES.get(name.lower(), name.lower())
        if target in REFCAT_COLUMNS and target != "hpx29":
            cols[target] = _column(t, name)
        elif (m := _SYNPHOT.match(name)) and f"magerr_{m['survey']}_{m['band']}" in t.colnames:
            synphot[(m["survey"].lower(), m["band"])] = (_column(t, name),
                                                         _column(t, f"magerr_{m['survey']}_{m['band']}"))
        elif not name.lower().startswith("magerr_"):
            ignored.append(name)
    if "ref_epoch" not in cols and "ra" in cols:
        raise IngestError(f"{path}: no ref_epoch column: the epoch of the positions must be given")
    try:
        with conn.transaction():
            n = load_refcat(conn, cols, progress=progress)
            n_phot = 0
            if synphot:
                bands = {(s.lower(), b.lower()): bid for s, b, bid in conn.execute(
                    "SELECT s.name, b.name, b.band_id FROM jsp.band b JOIN jsp.survey s USING (survey_id)")}
                v = validate_refcat(cols)
                h, sid = v["hpx29"], v["source_id"]
                parts = {"hpx29": [], "source_id": [], "band_id": [], "mag": [], "mag_err": []}
                for (survey, band), (mag, err) in synphot.items():
                    bid = bands.get((survey, band.lower()))
                    if bid is None:
                        ignored += [f"mag_{survey}_{band}", f"magerr_{survey}_{band}"]
                        continue
                    ok = np.isfinite(mag) & np.isfinite(err)
                    parts["hpx29"].append(h[ok])
                    parts["source_id"].append(sid[ok])
                    parts["band_id"].append(np.full(ok.sum(), bid, dtype=np.int16))
                    parts["mag"].append(mag[ok].astype(float))
                    parts["mag_err"].append(err[ok].astype(float))
                if parts["hpx29"]:
                    data = {k: np.concatenate(v) for k, v in parts.items()}
                    n_phot = copy_columns(conn, "jsp.refcat_synphot", data,
                                          {"hpx29": "int8", "source_id": "int8", "band_id": "int2",
                                           "mag": "float8", "mag_err": "float8"})
    except LoadError as exc:
        raise IngestError(f"{path}: {exc}") from exc
    return {"stars": n, "synphot_rows": n_phot, "ignored_columns": ignored}
