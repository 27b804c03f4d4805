"""The concordance frame of a release, as later tiers use it.

Everything that maps an image's pixels to the sky, or its counts to nJy,
after the concordance steps ran must go through these two functions, so
that the release's solution (not the WCS or zero point delivered with the
image) is applied everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import astropy.units as u
import psycopg
from astropy.wcs import WCS

from jspdb.concordance.astrometry import shift_wcs
from jspdb.db.release import get_release
from jspdb.errors import JspdbError
from jspdb.ingest.wcs import wcs_from_text

__all__ = ["PhotometricFrame", "SolutionMissing", "corrected_wcs", "photometric_frame"]

class SolutionMissing(JspdbError):
    """The release holds no solution for that image (its concordance step failed or has not run)."""


def corrected_wcs(conn: psycopg.Connection, release: str, image_id: int) -> WCS:
    """The image's WCS after the release's astrometric solution and its cross-image tie (when tied).

    Raises
    ------
    SolutionMissing
        When the release has no astrometric solution for the image.
    jspdb.errors.ReleaseError
        When there is no such release.
    """
    row = _solution(conn, "astrometric", "wcs_header, tie_dra_mas, tie_ddec_mas", release, image_id)
    wcs = wcs_from_text(row[0])
    if row[1] is None:
        return wcs
    return shift_wcs(wcs, row[1], row[2])


@dataclass(frozen=True)
class PhotometricFrame:
    """An image's tied photometric calibration.

    Attributes
    ----------
    zeropoint_mag
        Tied zero point: AB magnitude of one image count (reference zero
        point plus the tie offset), at colour 0 of ``colour_ref``.
    zeropoint_err_mag
        Its 1-sigma error (the tie's when the image was tied), mag.
    colour_term, colour_ref
        ``zp(c) = zeropoint_mag + colour_term * c`` for a source of colour
        ``c`` (AB mag) in ``colour_ref``; None when no term was fitted.
    """

    zeropoint_mag: float
    zeropoint_err_mag: float
    colour_term: float | None
    colour_ref: str | None

    @property
    def njy_per_count(self) -> float:
        """Flux of one image count, nJy (at colour 0)."""
        return float((self.zeropoint_mag * u.ABmag).to_value(u.nJy))


def photometric_frame(conn: psycopg.Connection, release: str, image_id: int) -> PhotometricFrame:
    """The image's zero point in the release, tied across images when the tile step ran.

    Raises
    ------
    SolutionMissing
        When the release has no photometric solution for the image.
    jspdb.errors.ReleaseError
        When there is no such release.
    """
    return PhotometricFrame(*_solution(
        conn, "photometric", "zeropoint_mag + coalesce(tie_offset_mag, 0), "
        "coalesce(tie_err_mag, zeropoint_err_mag), colour_term, colour_ref", release, image_id))


def _solution(conn: psycopg.Connection, kind: str, columns: str, release: str, image_id: int) -> tuple:
    """``columns`` (fixed SQL, never user text) of the release's ``kind`` solution of the image."""
    row = conn.execute(f"SELECT {columns} FROM jsp.{kind}_solution WHERE release_id = %s AND image_id = %s",
                       (get_release(conn, release)["release_id"], image_id)).fetchone()
    if row is None:
        raise SolutionMissing(f"release {release} has no {kind} solution for image {image_id}")
    return row
