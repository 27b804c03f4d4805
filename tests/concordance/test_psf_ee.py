"""Encircled energy of the PSF models (jspdb.concordance.psf_ee): known answers, no database."""

from __future__ import annotations

import galsim
import numpy as np
import pytest
import sep

from jspdb.concordance.psf_ee import (
    INSTRUMENT_OPTICS,
    encircled_energy,
    encircled_energy_profile,
    has_psf_model,
    kolmogorov_fwhm_from_half_light,
    psf_profile,
)


@pytest.mark.parametrize(("survey", "lam", "scale"), [("euclid", 702.6, 0.1), ("euclid", 1759.0, 0.3),
                                                      ("roman", 1290.0, 0.11), ("lsst", 620.0, 0.2)])
def test_ee_increases_with_radius_towards_one(survey, lam, scale):
    radii = [2.0, 4.0, 8.0, 16.0, 32.0]
    ee = [encircled_energy(survey, lam, scale, r, fwhm_px=4.0) for r in radii]
    assert np.all(np.diff(ee) > 0)
    assert 0.3 < ee[0] < 1.0
    big = encircled_energy(survey, lam, scale, 150.0, fwhm_px=4.0)
    assert 0.99 < big <= 1.0  # an Airy wing falls as r^-3: 1 - EE ~ 1/r


def test_ee_of_a_wide_gaussian_is_analytic():
    """sigma = 6 px: pixel and sampling effects are < 1e-3; the pixel adds 1/12 px^2 to the variance."""
    sigma, r = 6.0, 9.0
    ee = encircled_energy_profile(galsim.Gaussian(sigma=sigma), 1.0, r)[0]
    s2 = sigma**2 + 1.0 / 12.0
    assert ee == pytest.approx(1.0 - np.exp(-(r**2) / (2.0 * s2)), abs=1e-3)


@pytest.mark.parametrize(("survey", "lam", "scale", "r"), [("euclid", 702.6, 0.1, 7.0), ("roman", 1840.0, 0.11, 9.0),
                                                           ("euclid", 1759.0, 0.3, 6.0)])
def test_ee_matches_a_large_drawn_image(survey, lam, scale, r):
    """A 601 px image at a tighter FFT folding threshold, summed at an off-centre position."""
    prof = psf_profile(survey, lam).withGSParams(galsim.GSParams(folding_threshold=2e-4, maximum_fft_size=32768))
    n, off = 601, (0.2, -0.35)
    img = prof.drawImage(nx=n, ny=n, scale=scale, offset=off).array.astype(np.float64)
    c = 0.5 * (n - 1)
    direct = sep.sum_circle(img, [c + off[0]], [c + off[1]], r, subpix=0)[0][0]
    assert encircled_energy(survey, lam, scale, r) == pytest.approx(direct, abs=5e-4)  # 0.5 mmag


def test_space_ee_falls_with_wavelength():
    """At a fixed radius the Airy pattern of the redder band holds less light (28-56 mmag lost at 4 FWHM)."""
    ee = [encircled_energy("roman", lam, 0.11, 7.0) for lam in (620.0, 870.0, 1060.0, 1290.0, 1580.0, 1840.0)]
    assert np.all(np.diff(ee) < 0)
    assert 0.93 < ee[-1] < ee[0] < 0.99


def test_instrument_optics_are_the_simulators():
    """Honesty check: the pipeline's instrument PSFs share their optics with jspdb.sim (see docs)."""
    from jspdb.sim.bands import SURVEYS

    for name, o in INSTRUMENT_OPTICS.items():
        s = SURVEYS[name]
        assert (o.diameter_m, o.obscuration, o.jitter_arcsec) == (s.diameter, s.obscuration, s.jitter)


def test_kolmogorov_fwhm_from_half_light_inverts_the_detection_estimator():
    """A Kolmogorov star measured as detect_stars does (2 x sep flux_radius within 10 px) -> its FWHM."""
    for fwhm in (2.8, 3.6, 4.6):
        img = galsim.Kolmogorov(fwhm=fwhm).drawImage(nx=61, ny=61, scale=1.0, offset=(0.3, 0.1)).array
        r50, _ = sep.flux_radius(img.astype(np.float64), [30.3], [30.1], [10.0], 0.5, subpix=5)
        measured = 2.0 * r50[0]
        assert measured > 1.05 * fwhm  # the wings make 2 r50 larger than the FWHM
        assert kolmogorov_fwhm_from_half_light(measured) == pytest.approx(fwhm, rel=0.02)


def test_models_known_and_unknown():
    assert has_psf_model("LSST") and has_psf_model("euclid") and has_psf_model("roman")
    assert not has_psf_model("ztf")
    with pytest.raises(ValueError, match="no PSF model"):
        encircled_energy("ztf", 480.0, 1.0, 5.0)
    with pytest.raises(ValueError, match="fwhm_px"):
        encircled_energy("lsst", 620.0, 0.2, 12.0)
