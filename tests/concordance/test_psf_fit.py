"""Centroids from the instrument PSF model on undersampled stars drawn by GalSim (arrays only)."""

from __future__ import annotations

import numpy as np
import pytest

from jspdb.concordance.astrometry import _psf_fit_one
from jspdb.concordance.psf_ee import instrument_psf
from jspdb.concordance.psf_fit import PixelPSF, fit_positions
from jspdb.sim.bands import get_band


def _stars(band: str, n: int, flux: float, seed: int):
    """``n`` stars of one band's instrument PSF at random sub-pixel phases, unit-variance noise."""
    b = get_band(band)
    prof = instrument_psf(b.survey, b.wl_eff)
    rng = np.random.default_rng(seed)
    size = 31
    c = (size - 1) / 2.0
    out = []
    for _ in range(n):
        dx, dy = rng.uniform(-0.5, 0.5, 2)
        img = (prof * flux).drawImage(nx=size, ny=size, scale=b.pixel_scale, offset=(dx, dy)).array
        out.append((img + rng.normal(0.0, 1.0, img.shape), c + dx, c + dy))
    return prof, b.pixel_scale, out


@pytest.mark.parametrize("band", ["euclid_y", "euclid_h", "roman_f062", "roman_f106"])
def test_model_centroids_have_no_pixel_phase_bias(band):
    """High S/N: the model fit is exact to < 0.5 mas; the double Gaussian is not (up to 19 mas rms)."""
    prof, scale, stars = _stars(band, 25, 1e5, seed=1)
    psf = PixelPSF.from_profile(prof, scale)
    err_model, err_gauss = [], []
    for img, x, y in stars:
        var, bad = np.ones_like(img), np.zeros(img.shape, bool)
        xf, yf, ex, ey, ok = fit_positions(img, var, bad, [x + 0.2], [y - 0.1], psf)
        assert ok[0]
        err_model.append(np.hypot(xf[0] - x, yf[0] - y) * scale * 1000)
        g = _psf_fit_one(img, var, bad, x + 0.2, y - 0.1, 4, 0.5)
        err_gauss.append(np.hypot(g[0] - x, g[1] - y) * scale * 1000)
    rms_model, rms_gauss = np.sqrt(np.mean(np.square(err_model))), np.sqrt(np.mean(np.square(err_gauss)))
    print(f"{band}: model {rms_model:.3f} mas, double Gaussian {rms_gauss:.2f} mas")
    assert rms_model < 0.5
    assert rms_gauss > 3 * rms_model


def test_model_centroid_errors_are_calibrated():
    """Moderate S/N: the scatter of the fitted centres matches the errors from the Jacobian."""
    prof, scale, stars = _stars("euclid_j", 200, 3000.0, seed=2)
    psf = PixelPSF.from_profile(prof, scale)
    z = []
    for img, x, y in stars:
        xf, yf, ex, ey, ok = fit_positions(img, np.ones_like(img), np.zeros(img.shape, bool), [x], [y], psf)
        if ok[0]:
            z += [(xf[0] - x) / ex[0], (yf[0] - y) / ey[0]]
    z = np.array(z)
    assert len(z) > 380
    assert 0.85 < np.std(z) < 1.15 and abs(np.mean(z)) < 0.15


def test_model_needs_a_psf():
    from jspdb.concordance.astrometry import detect_stars

    with pytest.raises(ValueError, match="needs the image's PSF model"):
        detect_stars(np.random.default_rng(0).normal(0, 1, (64, 64)), np.ones((64, 64)), np.zeros((64, 64), int),
                     centroid="model")
