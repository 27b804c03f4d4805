"""Delivered files follow each survey's convention; catalogs carry units; the truth files are complete."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from sim_helpers import truth_pixels

from jspdb.sim.bands import get_band
from jspdb.sim.image import MASK_BITS, wcs_from_header
from jspdb.sim.reference import REF_G_LIMIT
from jspdb.sim.writers import EUCLID_FLAGS, ROMAN_DQ


def _entry(index, image_id):
    return next(e for e in index["images"] if e["image_id"] == image_id)


def test_lsst_calexp_layout(field, field_dir, field_index):
    image = field.image("lsst_g_e01")
    with fits.open(field_dir / _entry(field_index, "lsst_g_e01")["file"]) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE"]
        h0 = hdul[0].header
        for key in ("INSTRUME", "FILTER", "BAND", "DATE-OBS", "MJD-OBS", "EXPTIME", "GAIN",
                    "MAGZERO", "SATURATE"):
            assert key in h0
        assert h0["BAND"] == "g" and h0["INSTRUME"] == "LSSTCam"
        assert h0["MAGZERO"] == pytest.approx(image.zp_nominal)
        assert np.array_equal(hdul["IMAGE"].data, image.science)
        assert np.array_equal(hdul["VARIANCE"].data, image.variance)
        mask_hdr = hdul["MASK"].header
        assert {k: mask_hdr[f"MP_{k}"] for k in MASK_BITS} == MASK_BITS
        w = WCS(hdul["IMAGE"].header)
        assert np.allclose(w.all_pix2world([10.0], [20.0], 1), image.wcs_written.all_pix2world([10.0], [20.0], 1),
                           rtol=0, atol=1e-10)


def test_euclid_layout(field, field_dir, field_index):
    image = field.image("euclid_vis_e00")
    with fits.open(field_dir / _entry(field_index, "euclid_vis_e00")["file"]) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "RMS", "FLG"]
        assert hdul[0].header["INSTRUME"] == "VIS" and hdul[0].header["FILTER"] == "VIS"
        assert np.allclose(hdul["RMS"].data ** 2, image.variance, rtol=1e-5)
        flg = hdul["FLG"].data
        cr = (image.mask & (1 << MASK_BITS["CR"])) != 0
        assert cr.any(), "a 566 s VIS exposure has cosmic rays"
        assert np.all(flg[cr] & EUCLID_FLAGS["COSMIC"])
        assert hdul["FLG"].header["FLAG_SAT"] == EUCLID_FLAGS["SAT"]


def test_roman_asdf_with_gwcs(field, field_dir, field_index):
    import roman_datamodels as rdm

    image = field.image("roman_f184_e00")
    with rdm.open(field_dir / _entry(field_index, "roman_f184_e00")["file"]) as model:
        assert model.meta.instrument.optical_element == "F184"
        assert model.meta.exposure.exposure_time == pytest.approx(get_band("roman_f184").exptime)
        assert np.array_equal(np.asarray(model.data), image.science)
        dq = np.asarray(model.dq)
        bad = (image.mask & (1 << MASK_BITS["BAD"])) != 0
        assert bad.any() and np.all(dq[bad] & ROMAN_DQ["DO_NOT_USE"])
        ra, dec = model.meta.wcs(np.array([5.0, 400.0]), np.array([7.0, 300.0]))
        ra_w, dec_w = image.wcs_written.all_pix2world([6.0, 401.0], [8.0, 301.0], 1)
        assert np.allclose(ra, ra_w, atol=1e-9) and np.allclose(dec, dec_w, atol=1e-9)
        extra = model.meta["jspdb_sim"]
        assert extra["magzero"] == pytest.approx(image.zp_nominal)
        assert extra["saturation"] == pytest.approx(image.saturation)
        # MJy/sr per DN/s follows the nominal zero point
        conv = model.meta.photometry.conversion_megajanskys
        pix_sr = (0.11 / 206264.80624709636) ** 2
        assert conv * pix_sr * 1e15 == pytest.approx(10 ** (-0.4 * (image.zp_nominal - 31.4)), rel=1e-9)


def test_truth_files_recover_true_wcs_zero_point_and_psf(field, field_dir, field_index):
    for entry in field_index["images"]:
        image = field.image(entry["image_id"])
        truth = json.loads((field_dir / entry["truth"]).read_text())
        w = wcs_from_header(truth["wcs_true"])
        x, y = np.array([1.0, 50.0]), np.array([1.0, 70.0])
        assert np.allclose(w.all_pix2world(x, y, 1), image.wcs_true.all_pix2world(x, y, 1), atol=1e-11)
        assert truth["zp_true"] == pytest.approx(image.zp_true)
        assert truth["psf"]["wl_ref"] == pytest.approx(image.psf.wl_ref)
        for key in ("astrometric_offset_ra_arcsec", "zp_error_mag", "n_cosmic_rays", "bad_columns"):
            assert key in truth["systematics"]


def test_truth_catalog_parquet(field, field_dir):
    table = pq.read_table(field_dir / "truth.parquet")
    assert table.num_rows == field.truth.num_rows
    schema = table.schema
    assert schema.field("flux_lsst_r").metadata[b"unit"] == b"nJy"
    assert schema.field("pa").metadata[b"unit"] == b"deg"
    meta = json.loads(schema.metadata[b"jspdb"])
    assert meta["spec"]["seed"] == field.spec.seed
    for band in ("lsst_u", "euclid_vis", "roman_f184"):
        assert f"flux_{band}" in table.column_names and f"leff_{band}" in table.column_names
    # colours are SED colours: E galaxies are redder than Im galaxies in g - i
    sed = table.column("sed").to_numpy(zero_copy_only=False)
    gi = -2.5 * np.log10(table.column("flux_lsst_g").to_numpy() / table.column("flux_lsst_i").to_numpy())
    z = table.column("redshift").to_numpy()
    low = z < 0.8
    assert np.median(gi[(sed == "E") & low]) > np.median(gi[(sed == "Im") & low]) + 0.5


def test_reference_catalog_is_gaia_like(field, field_dir):
    ref = pq.read_table(field_dir / "reference.parquet")
    assert ref.num_rows >= 10
    g = ref.column("phot_g_mean_mag").to_numpy()
    assert g.max() < REF_G_LIMIT + 0.1
    err = ref.column("ra_error").to_numpy()
    # errors grow with magnitude (against the measured G, which is itself a little noisy)
    assert np.corrcoef(g, np.log(err))[0, 1] > 0.9
    assert err[np.argmax(g)] > 5 * err[np.argmin(g)] or g.max() - g.min() < 2
    # offsets from the truth scatter like the quoted errors
    truth = field.truth
    idx = {v: i for i, v in enumerate(truth.column("id").to_pylist())}
    rows = [idx[t] for t in ref.column("truth_id").to_pylist()]
    dec_t = truth.column("dec").to_numpy()[rows]
    pull = (ref.column("dec").to_numpy() - dec_t) * 3.6e6 / ref.column("dec_error").to_numpy()
    assert 0.4 < np.std(pull) < 1.8
    for band in ("lsst_r", "euclid_h", "roman_f062"):
        assert f"mag_{band}" in ref.column_names and f"magerr_{band}" in ref.column_names
    assert ref.schema.field("pmra").metadata[b"unit"] == b"mas/yr"


def test_saturated_bright_stars_are_flagged(field):
    n_checked = 0
    for image in [im for im in field.images if im.survey == "lsst"]:
        tp = truth_pixels(field, image)
        ny, nx = image.shape
        on = tp["star"] & (tp["x"] > 5) & (tp["x"] < nx - 5) & (tp["y"] > 5) & (tp["y"] < ny - 5)
        # peak of a point source: flux over the effective area of the PSF (Gaussian approx.)
        fwhm_pix = image.systematics["psf_fwhm_arcsec"] / image.band_info.pixel_scale
        peak = image.njy_to_units(tp["flux"]) / (1.1331 * fwhm_pix**2)
        for k in np.flatnonzero(on & (peak > 3 * image.saturation)):
            ix, iy = int(round(tp["x"][k])) - 1, int(round(tp["y"][k])) - 1
            assert image.mask[iy, ix] & (1 << MASK_BITS["SAT"]), image.image_id
            assert image.science[iy, ix] == pytest.approx(image.saturation, rel=1e-5)
            n_checked += 1
    assert n_checked >= 1, "the field's added bright stars should saturate LSST"


@pytest.mark.parametrize("image_id", ["lsst_z_e01", "euclid_y_e00", "roman_f087_e00"])
def test_written_images_read_back_for_injection(field, field_dir, image_id):
    from jspdb.sim.inject import inject_sources
    from jspdb.sim.readers import load_field_image

    image = field.image(image_id)
    loaded = load_field_image(field_dir, image_id)
    assert np.array_equal(loaded.science, image.science)
    assert np.array_equal(loaded.mask, image.mask)
    assert np.allclose(loaded.variance, image.variance, rtol=2e-3)  # Roman err is float16
    assert loaded.zp_true == pytest.approx(image.zp_true)
    assert loaded.psf == image.psf
    x, y = np.array([30.5]), np.array([25.25])
    ra, dec = image.wcs_true.all_pix2world(x, y, 1)
    a, _ = inject_sources(image, {"ra": ra, "dec": dec, "flux": [5e4]}, seed=2, add_noise=False)
    b, _ = inject_sources(loaded, {"ra": ra, "dec": dec, "flux": [5e4]}, seed=2, add_noise=False)
    assert np.allclose(a.science - image.science, b.science - loaded.science, atol=1e-6 * np.abs(a.science).max())
