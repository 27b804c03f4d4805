"""What a release stored for a simulated field, against the simulator's truth (the demo and the benchmarks).

The simulator writes, per image, its true WCS and true zero point
(``<field>/truth/<image>.json``). `stored_against_truth` reads the release's
solutions as later tiers do (`jspdb.db.solutions`: tied WCS, tied zero point)
and also the images' own solutions before the tie, and measures both;
`summarise` condenses them per survey.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from jspdb.concordance.astrometry import sky_error_mas
from jspdb.db.solutions import corrected_wcs, photometric_frame
from jspdb.ingest.wcs import wcs_from_text

__all__ = ["ImageAgainstTruth", "stored_against_truth", "summarise"]


@dataclass(frozen=True)
class ImageAgainstTruth:
    """One image's stored solutions against the truth.

    Attributes
    ----------
    image_id, name, survey
        Database id, simulator name, survey.
    wcs_error_mas, own_wcs_error_mas
        Rms over the image of the sky distance between the tied (resp. the
        image's own, untied) WCS and the true WCS, mas.
    sigma_mas
        The solution's predicted error (same definition), mas.
    centre_offset_mas
        Tied WCS minus truth at the image centre, (dRA cos Dec, dDec), mas.
    zp_error_mag, own_zp_error_mag
        Tied (resp. own) zero point minus the true one, mag (NaN: none).
    zp_err_mag
        The stored error of the tied zero point, mag.
    """

    image_id: int
    name: str
    survey: str
    wcs_error_mas: float
    own_wcs_error_mas: float
    sigma_mas: float
    centre_offset_mas: tuple[float, float]
    zp_error_mag: float
    own_zp_error_mag: float
    zp_err_mag: float


def stored_against_truth(conn: psycopg.Connection, release: str, field_dir: Path) -> list[ImageAgainstTruth]:
    """Every image of ``release`` that has an astrometric solution and a truth file under ``field_dir``."""
    truth = {p.stem: json.loads(p.read_text()) for p in (Path(field_dir) / "truth").glob("*.json")}
    out = []
    for image_id, path, survey, header, sigma, zp_own in conn.execute(
            "SELECT i.image_id, i.source_path, s.name, a.wcs_header, a.sigma_mas, p.zeropoint_mag FROM jsp.image i "
            "JOIN jsp.survey s USING (survey_id) JOIN jsp.astrometric_solution a USING (image_id) "
            "JOIN jsp.release r ON r.release_id = a.release_id LEFT JOIN jsp.photometric_solution p "
            "ON p.release_id = a.release_id AND p.image_id = a.image_id WHERE r.name = %s ORDER BY i.image_id",
            (release,)).fetchall():
        name = max((k for k in truth if k in str(path)), key=len, default=None)
        if name is None:
            continue
        t = truth[name]
        shape = tuple(t["shape"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w_true = WCS(fits.Header(t["wcs_true"]))
            w_own = wcs_from_text(header)
        w = corrected_wcs(conn, release, image_id)
        cx, cy = (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0
        (fa,), (fd,) = w.all_pix2world([cx], [cy], 0)
        (ta,), (td,) = w_true.all_pix2world([cx], [cy], 0)
        centre = (float(((fa - ta + 180.0) % 360.0 - 180.0) * np.cos(np.radians(td)) * 3.6e6),
                  float((fd - td) * 3.6e6))
        if zp_own is None:
            dzp = dzp_own = err = float("nan")
        else:
            frame = photometric_frame(conn, release, image_id)
            dzp, err, dzp_own = frame.zeropoint_mag - t["zp_true"], frame.zeropoint_err_mag, zp_own - t["zp_true"]
        out.append(ImageAgainstTruth(
            image_id=image_id, name=name, survey=survey, wcs_error_mas=sky_error_mas(w, w_true, shape),
            own_wcs_error_mas=sky_error_mas(w_own, w_true, shape), sigma_mas=float(sigma), centre_offset_mas=centre,
            zp_error_mag=float(dzp), own_zp_error_mag=float(dzp_own), zp_err_mag=float(err)))
    return out


def summarise(rows: list[ImageAgainstTruth]) -> dict[str, dict[str, float]]:
    """Per survey: image count; rms of the tied and own WCS errors (mas); rms of the tied and own zero-point
    errors and the mean tied error (mmag); mean centre offset (mas)."""
    out: dict[str, dict[str, float]] = {}
    for s in sorted({r.survey for r in rows}):
        rs = [r for r in rows if r.survey == s]

        def rms(v: list[float]) -> float:
            a = np.array(v, float)
            return float(np.sqrt(np.nanmean(a**2))) if np.isfinite(a).any() else float("nan")

        zp = [r.zp_error_mag for r in rs]
        out[s] = {"n": len(rs), "wcs_rms_mas": rms([r.wcs_error_mas for r in rs]),
                  "wcs_max_mas": float(max(r.wcs_error_mas for r in rs)),
                  "own_wcs_rms_mas": rms([r.own_wcs_error_mas for r in rs]),
                  "zp_rms_mmag": 1000 * rms(zp), "own_zp_rms_mmag": 1000 * rms([r.own_zp_error_mag for r in rs]),
                  "zp_mean_mmag": 1000 * float(np.nanmean(zp)) if np.isfinite(zp).any() else float("nan"),
                  "centre_dra_mas": float(np.mean([r.centre_offset_mas[0] for r in rs])),
                  "centre_ddec_mas": float(np.mean([r.centre_offset_mas[1] for r in rs]))}
    return out
