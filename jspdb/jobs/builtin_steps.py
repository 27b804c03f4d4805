"""The built-in steps: per-image astrometric and photometric concordance.

Thin layers: load inputs from the database and the datastore, call the pure
functions of `jspdb.concordance`, replace this release's solution rows of the
image. Both run inside the transaction the runner gives them.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import psycopg
from astropy.wcs import WCS
from psycopg.rows import dict_row

from jspdb import __version__
from jspdb.concordance.astrometry import (
    detect_stars,
    match_to_reference,
    reference_at_epoch,
    solve_astrometry,
)
from jspdb.concordance.photometry import solve_photometry
from jspdb.concordance.psf_ee import instrument_psf
from jspdb.concordance.psf_fit import pixel_psf
from jspdb.db.query import cone_sql, partition_order, refcat_cone
from jspdb.ingest.planes import load_planes
from jspdb.ingest.wcs import wcs_from_text, wcs_to_text
from jspdb.jobs.steps import Unit, register_step

#: Matching radius for the astrometric step: the surveys' raw WCSs are off by up to ~0.3".
ASTROM_MATCH_ARCSEC = 1.5
#: After the astrometric solution, matches are tight.
PHOTOM_MATCH_ARCSEC = 0.3


def _image(conn: psycopg.Connection, image_id: int) -> dict:
    with conn.cursor(row_factory=dict_row) as cur:
        img = cur.execute(
            "SELECT i.*, b.name AS band, s.name AS survey, b.band_id, b.wl_eff_nm FROM jsp.image i "
            "JOIN jsp.band b USING (band_id) "
            "JOIN jsp.survey s ON s.survey_id = i.survey_id WHERE image_id = %s", (image_id,)).fetchone()
        img["planes"] = cur.execute("SELECT plane, uri, hdu, convention FROM jsp.image_plane WHERE image_id = %s",
                                    (image_id,)).fetchall()
    return img


def _refstars(conn: psycopg.Connection, img: dict) -> list[dict]:
    radius = 0.5 * np.hypot(img["naxis1"], img["naxis2"]) * img["pixel_scale_arcsec"] / 3600.0 + 2.0 / 3600
    return refcat_cone(conn, img["ra_center"], img["dec_center"], radius)


def _fingerprint(conn: psycopg.Connection, unit: Unit, extra: str = "") -> str:
    img = conn.execute("SELECT checksum_sha256, ra_center, dec_center FROM jsp.image WHERE image_id = %s",
                       (unit.image_id,)).fetchone()
    # HEALPix-pruned (an unpruned q3c query plans every partition: seconds)
    q, params = cone_sql("jsp.refcat", img[1], img[2], 0.1, partition_order(conn, "jsp.refcat"),
                         columns="count(*), coalesce(sum(source_id), 0)")
    n, s = conn.execute(q, params).fetchone()
    return hashlib.sha256(f"{img[0]}|{n}|{s}|{__version__}|{extra}".encode()).hexdigest()


def _astrom_fp(conn, unit):
    return _fingerprint(conn, unit, "astrometry-v3")


def _photom_fp(conn, unit):
    sol = conn.execute("SELECT wcs_header FROM jsp.astrometric_solution WHERE release_id = %s AND image_id = %s",
                       (unit.release_id, unit.image_id)).fetchone()
    return _fingerprint(conn, unit, "photometry-v5|" + hashlib.sha256((sol[0] if sol else "").encode()).hexdigest())


def _matches(img: dict, planes, wcs: WCS, stars: list[dict], radius_arcsec: float):
    profile = instrument_psf(img["survey"], img["wl_eff_nm"])
    det = detect_stars(planes.science, planes.variance, planes.mask, saturation=img["saturation"],
                       psf=None if profile is None else pixel_psf(profile, float(img["pixel_scale_arcsec"])))
    ra, dec = wcs.all_pix2world(det["x"], det["y"], 0)
    ref = {k: np.array([s[k] if s[k] is not None else np.nan for s in stars], dtype=float)
           for k in ("ra", "dec", "pmra", "pmdec", "ref_epoch")}
    sid = np.array([s["source_id"] for s in stars], dtype=np.int64)
    if sid.size == 0:
        raise ValueError(f"image {img['image_id']}: no reference stars in the reference catalog over it")
    rra, rdec = reference_at_epoch(ref["ra"], ref["dec"], ref["pmra"], ref["pmdec"], float(ref["ref_epoch"][0]),
                                   img["t_min_mjd"])
    i, j, _ = match_to_reference(ra, dec, rra, rdec, radius_arcsec)
    return det, i, j, rra, rdec, sid


def _refarrays(stars: list[dict]) -> dict[str, np.ndarray]:
    """Reference rows as the arrays `solve_astrometry` takes (NULL -> NaN)."""
    cols = {"ra": "ra", "dec": "dec", "ref_epoch": "ref_epoch", "pmra": "pmra", "pmdec": "pmdec",
            "ra_error": "ra_err_mas", "dec_error": "dec_err_mas", "pmra_error": "pmra_err", "pmdec_error": "pmdec_err"}
    return {k: np.array([s.get(c) if s.get(c) is not None else np.nan for s in stars], dtype=float)
            for k, c in cols.items()}


@register_step("astrometry", scope="image", fingerprint=_astrom_fp, next_step="photometry")
def astrometry_step(conn: psycopg.Connection, unit: Unit) -> dict:
    """Fit the image's WCS to the reference catalog and store it for the release."""
    img = _image(conn, unit.image_id)
    planes = load_planes(img["planes"], img["wcs_header"], (img["naxis2"], img["naxis1"]))
    stars = _refstars(conn, img)
    if not stars:
        raise ValueError(f"image {img['image_id']}: no reference stars in the reference catalog over it")
    try:
        sol = solve_astrometry(planes.science, planes.variance, planes.mask, planes.wcs, _refarrays(stars),
                               img["t_min_mjd"], saturation=img["saturation"], match_radius_arcsec=ASTROM_MATCH_ARCSEC,
                               psf_profile=instrument_psf(img["survey"], img["wl_eff_nm"]))
    except ValueError as exc:
        raise ValueError(f"image {img['image_id']} ({img['survey']} {img['band']}): {exc}") from exc
    fit = sol.fit
    header = wcs_to_text(fit.wcs)
    conn.execute("DELETE FROM jsp.astrometric_solution WHERE release_id = %s AND image_id = %s",
                 (unit.release_id, unit.image_id))
    conn.execute(
        "INSERT INTO jsp.astrometric_solution (release_id, image_id, model, params, wcs_header, n_stars, rms_mas, "
        "sigma_mas, flags) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (unit.release_id, unit.image_id, fit.model,
         json.dumps({"n_matched": int(len(sol.x)), "n_rejected": fit.n_rejected, "n_detected": sol.n_detected,
                     "centroid": sol.centroid, "fwhm_px": sol.fwhm_px, "extra_scatter_mas": fit.extra_scatter_mas,
                     "chi2_dof": fit.chi2_dof, "crval": [float(v) for v in fit.wcs.wcs.crval]}),
         header, fit.n_stars, fit.rms_mas, fit.sigma_mas, 0 if fit.n_stars >= 10 else 1))
    # The stars and their residuals, for the tile's QA plots.
    return {"n_stars": fit.n_stars, "rms_mas": fit.rms_mas, "sigma_mas": fit.sigma_mas, "model": fit.model,
            "shape": [img["naxis2"], img["naxis1"]], "x": _floats(sol.x), "y": _floats(sol.y),
            "dra_mas": _floats(sol.residuals_mas[:, 0]), "ddec_mas": _floats(sol.residuals_mas[:, 1]),
            "used": [bool(u) for u in fit.used], "source_id": [int(stars[j]["source_id"]) for j in sol.ref_index],
            "err_mas": _floats(sol.star_errors_mas)}


@register_step("photometry", scope="image", fingerprint=_photom_fp, next_step="tie")
def photometry_step(conn: psycopg.Connection, unit: Unit) -> dict:
    """Zero point of the image from the reference stars' synthetic magnitudes in its band."""
    img = _image(conn, unit.image_id)
    planes = load_planes(img["planes"], img["wcs_header"], (img["naxis2"], img["naxis1"]))
    sol = conn.execute("SELECT wcs_header FROM jsp.astrometric_solution WHERE release_id = %s AND image_id = %s",
                       (unit.release_id, unit.image_id)).fetchone()
    if sol is None:
        raise ValueError(f"image {unit.image_id}: no astrometric solution in this release (run astrometry first)")
    wcs = wcs_from_text(sol[0])
    stars = _refstars(conn, img)
    # undersampled images: PSF-model centroids, as the astrometry step measures them (the forced PSF
    # fluxes need centres free of the pixel-phase bias of windowed centroids)
    det, i, j, _, _, sid = _matches(img, planes, wcs, stars, PHOTOM_MATCH_ARCSEC)
    mags = dict(((r[0]), (r[1], r[2])) for r in conn.execute(
        "SELECT source_id, mag, mag_err FROM jsp.refcat_synphot WHERE band_id = %s AND source_id = ANY(%s)",
        (img["band_id"], sid[j].tolist())))
    have = np.array([int(s) in mags for s in sid[j]], dtype=bool)
    i, j = i[have], j[have]
    if len(i) < 3:
        raise ValueError(f"image {img['image_id']} ({img['survey']} {img['band']}): only {len(i)} stars with "
                         f"synthetic magnitudes in its band match (need 3)")
    m = np.array([mags[int(s)][0] for s in sid[j]])
    me = np.array([mags[int(s)][1] for s in sid[j]])
    colour, colour_ref = _colours(conn, stars, j, sid)
    ps = solve_photometry(planes.science, planes.variance, planes.mask, det["x"][i], det["y"][i], m, me,
                          fwhm_px=float(det["fwhm_px"]), colour=colour, colour_ref=colour_ref,
                          survey=img["survey"], lam_nm=img["wl_eff_nm"], pixel_scale_arcsec=img["pixel_scale_arcsec"],
                          colour_pivot=0.0,  # stored: zp(c) = zeropoint_mag + colour_term * c
                          fit_colour=False)  # synthetic magnitudes in the image's own band: no colour term
    zp = ps.zeropoint
    conn.execute("DELETE FROM jsp.photometric_solution WHERE release_id = %s AND image_id = %s",
                 (unit.release_id, unit.image_id))
    conn.execute(
        "INSERT INTO jsp.photometric_solution (release_id, image_id, zeropoint_mag, zeropoint_err_mag, colour_term, "
        "colour_ref, n_stars, flags) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (unit.release_id, unit.image_id, ps.zeropoint_mag, ps.zeropoint_err_mag, zp.colour_term, ps.colour_ref,
         zp.n_stars, 0 if zp.n_stars >= 10 else 1))
    # Star by star, for the tile's tie (stars common to overlapping images) and QA plots.
    zp_star = m + 2.5 * np.log10(np.where(ps.flux > 0, ps.flux, np.nan))
    return {"zeropoint_mag": ps.zeropoint_mag, "n_stars": zp.n_stars, "band_id": img["band_id"],
            "source_id": [int(s) for s in sid[j]], "flux": _floats(ps.flux), "flux_err": _floats(ps.flux_err),
            "residual_mag": _floats(zp_star - ps.zeropoint_mag), "residual_err_mag": _floats(me),
            "colour": None if colour is None else _floats(colour), "colour_ref": colour_ref,
            "colour_term": zp.colour_term, "used": [bool(u) for u in zp.used],
            # forced PSF fluxes on the same scale: they carry the zero points across surveys (tie step)
            "psf_flux": None if ps.psf is None else _floats(ps.psf.flux),
            "psf_flux_err": None if ps.psf is None else _floats(ps.psf.flux_err),
            "psf_to_total_err_mag": None if ps.psf is None else ps.psf.to_total_err_mag}


def _floats(a) -> list[float | None]:
    """JSON-ready floats (NaN -> None)."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(a, dtype=float)]


#: Synthetic colour (survey, band) x 2 used for the colour term when the reference has no BP/RP.
SYNTH_COLOUR = (("lsst", "g"), ("lsst", "i"))


def _colours(conn: psycopg.Connection, stars: list[dict], j: np.ndarray, sid: np.ndarray):
    """Reference colour of the matched stars: BP-RP when the catalog has it, else synthetic g-i (AB mag)."""
    bp = np.array([stars[k]["bp_mag"] if stars[k].get("bp_mag") is not None else np.nan for k in j], dtype=float)
    rp = np.array([stars[k]["rp_mag"] if stars[k].get("rp_mag") is not None else np.nan for k in j], dtype=float)
    if np.isfinite(bp - rp).sum() >= 3:
        return bp - rp, "bp-rp"
    rows = conn.execute(
        "SELECT p.source_id, s.name, b.name, p.mag FROM jsp.refcat_synphot p JOIN jsp.band b USING (band_id) "
        "JOIN jsp.survey s ON s.survey_id = b.survey_id WHERE (s.name, b.name) IN ((%s, %s), (%s, %s)) "
        "AND p.source_id = ANY(%s)", (*SYNTH_COLOUR[0], *SYNTH_COLOUR[1], sid[j].tolist())).fetchall()
    mag = {(int(r[0]), r[1], r[2]): r[3] for r in rows}
    c = np.array([mag.get((int(s), *SYNTH_COLOUR[0]), np.nan) - mag.get((int(s), *SYNTH_COLOUR[1]), np.nan)
                  for s in sid[j]], dtype=float)
    if np.isfinite(c).sum() >= 3:
        return c, "-".join("_".join(sb) for sb in SYNTH_COLOUR)
    return None, None


def _tile_images(conn: psycopg.Connection, unit: Unit, *, star_lists: bool = True) -> list[dict]:
    """The tile's images with their solutions and (``star_lists``) the stars their last successful steps left."""
    lists = ("""(SELECT result FROM jsp.tile_job j WHERE j.release_id = %(r)s AND j.image_id = it.image_id
                       AND j.step = 'photometry' AND j.state = 'done') AS phot,
                   (SELECT result FROM jsp.tile_job j WHERE j.release_id = %(r)s AND j.image_id = it.image_id
                       AND j.step = 'astrometry' AND j.state = 'done') AS astrom""" if star_lists
             else "NULL AS phot, NULL AS astrom")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            SELECT it.image_id, i.band_id, b.name AS band, b.wl_eff_nm, s.name AS survey, i.ra_center, i.dec_center,
                   p.zeropoint_mag, p.zeropoint_err_mag, a.rms_mas, a.sigma_mas,
                   {lists}
              FROM jsp.image_tile it JOIN jsp.image i USING (image_id) JOIN jsp.band b USING (band_id)
              JOIN jsp.survey s ON s.survey_id = i.survey_id
              LEFT JOIN jsp.photometric_solution p ON p.release_id = %(r)s AND p.image_id = it.image_id
              LEFT JOIN jsp.astrometric_solution a ON a.release_id = %(r)s AND a.image_id = it.image_id
             WHERE it.tile_order = %(o)s AND it.tile_ipix = %(p)s
             ORDER BY it.image_id
            """, {"r": unit.release_id, "o": unit.tile_order, "p": unit.tile_ipix}).fetchall()


def _tie_fp(conn: psycopg.Connection, unit: Unit) -> str:
    # The solutions determine the star lists (same step runs), so the fingerprint need not read those.
    rows = [(r["image_id"], r["zeropoint_mag"], r["zeropoint_err_mag"], r["rms_mas"])
            for r in _tile_images(conn, unit, star_lists=False)]
    return hashlib.sha256(f"tie-v3|{__version__}|{rows!r}".encode()).hexdigest()


def _arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


#: The survey whose zero points are carried to the others (`jspdb.concordance.transfer`).
GROUND_SURVEY = "lsst"


def _tie_photometry(conn: psycopg.Connection, unit: Unit, images: list[dict], primary: set[int]) -> dict:
    """Zero points of the tile's images: ground bands tied, carried to the other surveys, then all bands tied.

    1. The ground survey's images are tied band by band (`tie_zeropoints`).
    2. Every other image gets a zero point carried from the ground
       magnitudes of its stars (`cross_survey_zeropoints`), combined with
       its own reference zero point by their errors.
    3. Those bands are tied with the combined zero points as anchors.
    ``tie_offset_mag`` = final minus own zero point, for the primary images.
    """
    from jspdb.concordance.tie import tie_zeropoints
    from jspdb.concordance.transfer import ImagePhotometry, combine, cross_survey_zeropoints
    from jspdb.healpix import pixel_range29

    rows = [r for r in images if r["zeropoint_mag"] is not None and r["phot"]]
    anchor = {r["image_id"]: (r["zeropoint_mag"], r["zeropoint_err_mag"]) for r in rows}
    final: dict[int, tuple[float, float]] = {}
    out: dict = {"bands": {}, "transfer": {}}

    def tie_bands(selected: list[dict]) -> None:
        by_band: dict[str, list[dict]] = {}
        for r in selected:  # band names are unique within a survey only
            by_band.setdefault(f"{r['survey']}/{r['band']}", []).append(r)
        for band, brows in sorted(by_band.items()):
            ids = [r["image_id"] for r in brows]
            tie = tie_zeropoints({k: anchor[k][0] for k in ids}, {k: anchor[k][1] for k in ids},
                                 {r["image_id"]: (r["phot"]["source_id"], _arr(r["phot"]["flux"]),
                                                  _arr(r["phot"]["flux_err"])) for r in brows})
            final.update({k: (tie.zeropoint_mag[k], tie.zeropoint_err_mag[k]) for k in ids})
            out["bands"][band] = {"n_images": len(brows), "n_common_stars": tie.n_stars,
                                  "residual_rms_mag": tie.residual_rms_mag, "offset_rms_mag": tie.offset_rms_mag}

    ground = [r for r in rows if r["survey"] == GROUND_SURVEY]
    others = [r for r in rows if r["survey"] != GROUND_SURVEY]
    tie_bands(ground)
    if ground and others:
        phot, scale_err = {}, {}
        for r in rows:
            zp, err = final.get(r["image_id"], anchor[r["image_id"]])
            p = r["phot"]
            # the PSF fluxes' scale to the aperture totals is known to this (mag), common to the image's stars
            scale_err[r["image_id"]] = float(p.get("psf_to_total_err_mag") or 0.0) if p.get("psf_flux") else 0.0
            phot[r["image_id"]] = ImagePhotometry(
                survey=r["survey"], band=r["band_id"], wl_nm=float(r["wl_eff_nm"]), zeropoint_mag=zp,
                zeropoint_err_mag=float(np.hypot(err, scale_err[r["image_id"]])),
                colour_term=float(p.get("colour_term") or 0.0), source_id=p["source_id"],
                flux=_arr(p.get("psf_flux") or p["flux"]), flux_err=_arr(p.get("psf_flux_err") or p["flux_err"]),
                colour=_arr(p["colour"]) if p.get("colour") else np.full(len(p["source_id"]), np.nan))
        # the transformations come from every reference star of the tile (bright ones saturate on some
        # images but carry the weight) and of the measured stars (on images reaching beyond the tile)
        sids = sorted({int(s) for r in rows for s in r["phot"]["source_id"]})
        lo, hi = pixel_range29(unit.tile_ipix, unit.tile_order)
        ref: dict[int, list] = {}
        for sid, band_id, mag, err in conn.execute(
                "SELECT source_id, band_id, mag, mag_err FROM jsp.refcat_synphot WHERE hpx29 >= %s AND hpx29 < %s "
                "UNION SELECT source_id, band_id, mag, mag_err FROM jsp.refcat_synphot WHERE source_id = ANY(%s)",
                (int(lo), int(hi), sids)):
            ref.setdefault(band_id, []).append((sid, mag, err))
        reference = {b: ([v[0] for v in vals], np.array([v[1] for v in vals], float),
                         np.array([v[2] for v in vals], float)) for b, vals in ref.items()}
        wl = {r["band_id"]: float(r["wl_eff_nm"]) for r in rows}
        for image_id, t in cross_survey_zeropoints(phot, reference, wl, ground_survey=GROUND_SURVEY).items():
            if isinstance(t, str):
                out["transfer"][str(image_id)] = {"error": t}
                continue
            t_err = float(np.hypot(t.zeropoint_err_mag, scale_err[image_id]))
            anchor[image_id] = combine(*anchor[image_id], t.zeropoint_mag, t_err)
            out["transfer"][str(image_id)] = {
                "zeropoint_mag": t.zeropoint_mag, "zeropoint_err_mag": t_err, "n_stars": t.n_stars,
                "transformation": {"base_band_id": t.transformation.base, "colour_band_ids":
                                   [t.transformation.blue, t.transformation.red],
                                   "coeffs": [float(c) for c in t.transformation.coeffs],
                                   "scatter_mag": t.transformation.scatter_mag}}
    tie_bands(others)
    with conn.cursor() as cur:  # one pipelined batch, not a round trip per image
        cur.executemany("UPDATE jsp.photometric_solution SET tie_offset_mag = %s, tie_err_mag = %s "
                        "WHERE release_id = %s AND image_id = %s",
                        [(float(final[r["image_id"]][0] - r["zeropoint_mag"]), float(final[r["image_id"]][1]),
                          unit.release_id, r["image_id"]) for r in rows if r["image_id"] in primary])
    return out


@register_step("tie", scope="tile", fingerprint=_tie_fp)
def tie_step(conn: psycopg.Connection, unit: Unit) -> dict:
    """Tie the tile's images into one frame: zero points band by band, astrometry across all surveys; QA plots.

    Every image touching the tile constrains the ties; the tie offsets and
    shifts are stored for the images whose centre lies in the tile (each
    image belongs to exactly one tile that way, however many it touches).
    QA plots (PNG) go to ``<datastore>/qa/<release>/tile_<order>_<ipix>/``.
    """
    from jspdb.concordance.qa import plot_astrometric_residuals, plot_zeropoint_residuals
    from jspdb.concordance.tie import tie_astrometry
    from jspdb.config import get_settings
    from jspdb.healpix import tile_index

    images = _tile_images(conn, unit)
    centre_tiles = tile_index(np.array([r["ra_center"] for r in images], float),
                              np.array([r["dec_center"] for r in images], float), unit.tile_order) if images else []
    primary = {r["image_id"] for r, t in zip(images, centre_tiles, strict=True) if int(t) == unit.tile_ipix}
    summary: dict = {"bands": {}, "qa": []}
    summary.update(_tie_photometry(conn, unit, images, primary))
    astrom = [r for r in images if r["astrom"] and r["astrom"].get("source_id") and r["sigma_mas"] is not None]
    if len(astrom) >= 2:
        at = tie_astrometry({r["image_id"]: r["sigma_mas"] / np.sqrt(2.0) for r in astrom},
                            {r["image_id"]: (r["astrom"]["source_id"], _arr(r["astrom"]["dra_mas"]),
                                             _arr(r["astrom"]["ddec_mas"]), _arr(r["astrom"]["err_mas"]))
                             for r in astrom})
        with conn.cursor() as cur:
            cur.executemany("UPDATE jsp.astrometric_solution SET tie_dra_mas = %s, tie_ddec_mas = %s, "
                            "tie_err_mas = %s WHERE release_id = %s AND image_id = %s",
                            [(float(at.shift_mas[k][0]), float(at.shift_mas[k][1]),
                              float(np.hypot(*at.shift_err_mas[k]) / np.sqrt(2.0)), unit.release_id, k)
                             for k in (r["image_id"] for r in astrom) if k in primary])
        summary["astrometry"] = {"n_images": len(astrom), "n_common_stars": at.n_stars,
                                 "residual_rms_mas": at.residual_rms_mas,
                                 "shift_rms_mas": float(np.sqrt(np.mean([np.sum(np.square(v))
                                                                         for v in at.shift_mas.values()])))}
    qa_dir = get_settings().datastore / "qa" / unit.release / f"tile_{unit.tile_order}_{unit.tile_ipix}"
    qa_dir.mkdir(parents=True, exist_ok=True)
    for r in images:
        if r["image_id"] not in primary:
            continue
        name = f"{r['image_id']}_{r['survey']}_{r['band']}"
        if r["astrom"]:
            a = r["astrom"]
            summary["qa"].append(str(plot_astrometric_residuals(
                _arr(a["x"]), _arr(a["y"]), _arr(a["dra_mas"]), _arr(a["ddec_mas"]), qa_dir / f"astrometry_{name}.png",
                shape=tuple(a["shape"]), used=np.array(a["used"], bool),
                title=f"image {r['image_id']} {r['survey']} {r['band']} ({a['model']})")))
        if r["phot"] and r["phot"].get("colour"):
            p = r["phot"]
            summary["qa"].append(str(plot_zeropoint_residuals(
                _arr(p["colour"]), _arr(p["residual_mag"]), _arr(p["residual_err_mag"]),
                qa_dir / f"photometry_{name}.png", colour_term=p["colour_term"], used=np.array(p["used"], bool),
                colour_name=p["colour_ref"], title=f"image {r['image_id']} {r['survey']} {r['band']}")))
    return summary
