"""Raw survey WCSs disagree with the reference catalog by the injected offset; the true WCS removes it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sep
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS
from sim_helpers import good_mask

from jspdb.sim.image import wcs_from_header
from jspdb.sim.render import positions_at_epoch
from jspdb.sim.systematics import mjd_to_jyear

IMAGES = ["lsst_r_e00", "lsst_i_e01", "euclid_vis_e00", "euclid_h_e00", "roman_f062_e00", "roman_f158_e00"]


def _written_pix2world(path, survey):
    """Pixel (1-based) -> sky function from the WCS written in the delivered file."""
    if survey == "roman":
        import roman_datamodels as rdm

        with rdm.open(path) as model:
            gw = model.meta.wcs

        def f(x, y):
            ra, dec = gw(np.asarray(x) - 1.0, np.asarray(y) - 1.0)
            return np.asarray(ra), np.asarray(dec)

        return f
    ext = "IMAGE" if survey == "lsst" else "SCI"
    with fits.open(path) as hdul:
        w = WCS(hdul[ext].header)
    return lambda x, y: w.all_pix2world(x, y, 1)


def _stars(field, image):
    data = np.ascontiguousarray(image.science, dtype=np.float64)
    err = np.sqrt(np.ascontiguousarray(image.variance, dtype=np.float64))
    objs = sep.extract(data, 20.0, err=err, mask=good_mask(image), minarea=3)
    sig = image.systematics["psf_fwhm_arcsec"] / 2.3548 / image.band_info.pixel_scale
    x, y, _ = sep.winpos(data, objs["x"], objs["y"], np.full(len(objs), max(sig, 0.6)))
    ref = field.reference
    ra, dec = positions_at_epoch(
        ref.column("ra").to_numpy(), ref.column("dec").to_numpy(), ref.column("pmra").to_numpy(),
        ref.column("pmdec").to_numpy(), ref.column("ref_epoch").to_numpy(), mjd_to_jyear(image.mjd),
    )
    return x + 1.0, y + 1.0, ra, dec


def _offsets(pix2world, x, y, ref_ra, ref_dec):
    ra, dec = pix2world(x, y)
    cosd = np.cos(np.radians(ref_dec.mean()))
    d_ra = (ra[:, None] - ref_ra[None, :]) * cosd * 3600.0
    d_dec = (dec[:, None] - ref_dec[None, :]) * 3600.0
    dist = np.hypot(d_ra, d_dec)
    j = np.argmin(dist, axis=1)
    i = np.arange(len(x))
    ok = dist[i, j] < 0.6
    return d_ra[i, j][ok], d_dec[i, j][ok]


@pytest.mark.parametrize("image_id", IMAGES)
def test_raw_wcs_off_by_injected_offset_and_true_wcs_removes_it(field, field_dir, image_id):
    image = field.image(image_id)
    truth = json.loads((field_dir / "truth" / f"{image_id}.json").read_text())
    entry = next(e for e in json.loads((field_dir / "field.json").read_text())["images"]
                 if e["image_id"] == image_id)
    x, y, ref_ra, ref_dec = _stars(field, image)

    raw = _written_pix2world(field_dir / entry["file"], image.survey)
    d_ra, d_dec = _offsets(raw, x, y, ref_ra, ref_dec)
    assert d_ra.size >= 5, f"{image_id}: only {d_ra.size} reference stars matched"
    mean_ra, _, std_ra = sigma_clipped_stats(d_ra)
    mean_dec, _, std_dec = sigma_clipped_stats(d_dec)
    sem = max(std_ra, std_dec) / np.sqrt(d_ra.size)
    syst = truth["systematics"]
    inj_ra, inj_dec = syst["astrometric_offset_ra_arcsec"], syst["astrometric_offset_dec_arcsec"]
    assert 0.05 <= np.hypot(inj_ra, inj_dec) <= 0.2
    tol = 4.0 * sem + 0.01
    assert mean_ra == pytest.approx(inj_ra, abs=tol)
    assert mean_dec == pytest.approx(inj_dec, abs=tol)

    # the true WCS, recovered from the truth file's header, removes the offset
    true_wcs = wcs_from_header(truth["wcs_true"])
    c_ra, c_dec = _offsets(lambda a, b: true_wcs.all_pix2world(a, b, 1), x, y, ref_ra, ref_dec)
    cm_ra, _, _ = sigma_clipped_stats(c_ra)
    cm_dec, _, _ = sigma_clipped_stats(c_dec)
    assert abs(cm_ra) < tol and abs(cm_dec) < tol
    assert np.hypot(cm_ra, cm_dec) < 0.5 * np.hypot(inj_ra, inj_dec)


def test_written_wcs_differs_from_true_by_offset_rotation_and_scale(field):
    for image in field.images:
        s = image.systematics
        ny, nx = image.shape
        x = np.array([(nx + 1) / 2.0, 1.0, nx])
        y = np.array([(ny + 1) / 2.0, 1.0, ny])
        ra_t, dec_t = image.wcs_true.all_pix2world(x, y, 1)
        ra_w, dec_w = image.wcs_written.all_pix2world(x, y, 1)
        d_ra = (ra_w - ra_t) * np.cos(np.radians(dec_t)) * 3600.0
        d_dec = (dec_w - dec_t) * 3600.0
        # at the reference pixel: exactly the offset
        assert d_ra[0] == pytest.approx(s["astrometric_offset_ra_arcsec"], abs=1e-6)
        assert d_dec[0] == pytest.approx(s["astrometric_offset_dec_arcsec"], abs=1e-6)
        # at the corners: offset plus rotation and scale terms (small but non-zero)
        r = np.hypot(nx, ny) / 2.0 * image.band_info.pixel_scale
        extra = np.hypot(d_ra[1:] - d_ra[0], d_dec[1:] - d_dec[0])
        bound = r * (abs(s["astrometric_rotation_arcsec"]) / 206265.0 + abs(s["astrometric_scale_error"]))
        assert np.all(extra <= bound * 1.01 + 1e-6)
