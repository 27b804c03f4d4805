"""Isolated bright stars: aperture flux matches the truth flux within the noise, in every survey."""

from __future__ import annotations

import numpy as np
import pytest
from sim_helpers import aperture_fraction, isolated_stars, measure_aperture

SURVEYS = ["lsst", "euclid", "roman"]


def _aperture_arcsec(image) -> float:
    # ground: 3 FWHM; space: 1 arcsec (several Airy rings)
    return 3.0 * image.systematics["psf_fwhm_arcsec"] if image.psf.ground else 1.0


@pytest.mark.parametrize("survey", SURVEYS)
def test_bright_star_aperture_flux_matches_truth(field, survey):
    pulls, ratios = [], []
    for image in [im for im in field.images if im.survey == survey]:
        r_arcsec = _aperture_arcsec(image)
        r_pix = r_arcsec / image.band_info.pixel_scale
        for star in isolated_stars(field, image, r_arcsec, min_snr=50.0):
            measured, err = measure_aperture(image, star["x"], star["y"], r_pix)
            # the image's own PSF model tells how much of the light the aperture holds
            frac = aperture_fraction(image, star["x"], star["y"], star["leff"], r_pix)
            expected = float(image.njy_to_units(star["flux"])) * frac
            # fainter neighbours (< 2% of the star each) can add at most their flux
            slack = float(image.njy_to_units(star["contamination"]))
            assert abs(measured - expected) < 5.0 * err + slack, (
                f"{image.image_id} star {star['id']}: measured {measured:.1f} expected {expected:.1f} "
                f"+- {err:.1f} (+{slack:.1f} neighbours)"
            )
            pulls.append((measured - expected) / err)
            ratios.append(measured / expected)
    assert len(pulls) >= 10, f"only {len(pulls)} isolated bright stars measured in {survey}"
    pulls = np.array(pulls)
    # the errors are honest: pulls scatter like a unit Gaussian (neighbours add a little)
    assert 0.5 < np.std(pulls) < 1.6
    # and no net bias: the mean flux ratio is 1 to well below the 0.03 mag zero-point error
    assert abs(np.median(ratios) - 1.0) < 0.01


def test_nominal_zero_point_is_off_by_the_injected_error(field):
    """Calibrating with the header zero point leaves exactly the injected zero-point error."""
    for image in field.images:
        err = image.systematics["zp_error_mag"]
        assert image.zp_true - image.zp_nominal == pytest.approx(err, abs=1e-9)
        flux = 1000.0
        ratio = image.units_to_njy(image.njy_to_units(flux), nominal=True) / flux
        assert -2.5 * np.log10(ratio) == pytest.approx(-err, abs=1e-9)
    errors = np.array([im.systematics["zp_error_mag"] for im in field.images])
    assert 0.01 < np.std(errors) < 0.06


def test_single_epoch_depths(field):
    """LSST r reaches ~24.5 AB (5 sigma, point source) in one 30 s visit; depth follows seeing."""
    lsst_r = [im for im in field.images if im.band == "lsst_r"]
    for image in lsst_r:
        assert 24.0 < image.systematics["depth_m5"] < 25.0
    by_seeing = sorted(lsst_r, key=lambda im: im.systematics["seeing_fwhm_arcsec"])
    assert by_seeing[0].systematics["depth_m5"] > by_seeing[-1].systematics["depth_m5"]
    # the noise plane agrees with the depth: 5 sigma in the effective PSF area
    image = lsst_r[0]
    fwhm_pix = image.systematics["psf_fwhm_arcsec"] / 0.2
    n_eff = 4 * np.pi * ((fwhm_pix / 2.3548) ** 2 + 1 / 12)
    sigma = np.sqrt(np.median(image.variance) * n_eff)
    m5 = image.zp_nominal - 2.5 * np.log10(5 * sigma)
    assert m5 == pytest.approx(image.systematics["depth_m5"], abs=0.05)
