"""Forced PSF photometry on stars drawn by GalSim (arrays only): fluxes, errors, PSF dilation across an image."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from jspdb.concordance.psf_fit import PixelPSF
from jspdb.concordance.psf_phot import (
    DilationGrid,
    fit_dilation_field,
    fit_dilations,
    forced_fluxes,
)

SCALE = 0.2  # arcsec per pixel (LSST)
KOLMOGOROV = galsim.Kolmogorov(fwhm=0.8)


def _scene(n_side: int, flux: float, dilation, rng, *, pedestal: float = 0.0, sky_sigma: float = 5.0,
           neighbours: int = 0):
    """A grid of stars (dilated per position by ``dilation(x, y)``) on a pedestal, with Gaussian sky noise.

    Returns (image, variance, x, y, true dilation at each star).
    """
    size, step = n_side * 24, 24
    img = galsim.ImageD(size, size, scale=SCALE)
    xs, ys, ds = [], [], []
    for i in range(n_side):
        for j in range(n_side):
            x, y = 12 + step * i + rng.uniform(-0.5, 0.5), 12 + step * j + rng.uniform(-0.5, 0.5)
            d = float(dilation(x, y))
            stamp = (KOLMOGOROV.dilate(d) * flux).drawImage(scale=SCALE, nx=23, ny=23,
                                                            offset=(x - round(x), y - round(y)))
            stamp.setCenter(int(round(x)) + 1, int(round(y)) + 1)  # GalSim images are 1-based
            img[stamp.bounds & img.bounds] += stamp[stamp.bounds & img.bounds]
            xs.append(x)
            ys.append(y)
            ds.append(d)
            for _ in range(neighbours):  # faint round galaxies 1.5-3 FWHM away
                r, a = rng.uniform(6, 12), rng.uniform(0, 2 * np.pi)
                gx, gy = x + r * np.cos(a), y + r * np.sin(a)
                gal = galsim.Convolve(galsim.Exponential(half_light_radius=0.4), KOLMOGOROV)
                st = (gal * flux * 0.05).drawImage(scale=SCALE, nx=31, ny=31, offset=(gx - round(gx), gy - round(gy)))
                st.setCenter(int(round(gx)) + 1, int(round(gy)) + 1)
                img[st.bounds & img.bounds] += st[st.bounds & img.bounds]
    data = img.array + pedestal + rng.normal(0.0, sky_sigma, img.array.shape)
    var = np.full(data.shape, sky_sigma**2)
    return data, var, np.array(xs), np.array(ys), np.array(ds)


def test_grid_interpolation_matches_a_direct_drawing():
    """Between the sampled dilations (3 % apart) the interpolated PSF fits fluxes to < 1e-4 of a direct drawing."""
    grid = DilationGrid.from_profile(KOLMOGOROV, SCALE, half_width_px=8)
    dy, dx = np.mgrid[-6:7, -6:7] + np.array([0.3, -0.2])[:, None, None]
    for d in (0.913, 0.97, 1.0, 1.017, 1.046, 1.11):
        direct = PixelPSF.from_profile(KOLMOGOROV.dilate(d), SCALE, half_width_px=8).stamp(dx, dy)
        model = grid.stamp(d, dx, dy)
        # the flux a least-squares fit of the model gives for a star drawn with the direct PSF
        assert abs((model * direct).sum() / (model * model).sum() - 1.0) < 1e-4, d


def test_forced_fluxes_are_unbiased_with_calibrated_errors():
    """Known PSF, a pedestal of 30 sky sigma: mean flux within its error of the truth, errors calibrated."""
    rng = np.random.default_rng(11)
    data, var, x, y, d = _scene(8, 2000.0, lambda x, y: 1.0, rng, pedestal=150.0)
    grid = DilationGrid.from_profile(KOLMOGOROV, SCALE, half_width_px=9)
    seg, sid = np.zeros(data.shape, int), np.zeros(len(x), int)
    f, fe, ok = forced_fluxes(data, var, np.zeros(data.shape, bool), seg, sid, x, y, grid, d, radius_px=6.0)
    assert ok.all()
    z = (f - 2000.0) / fe
    print(f"mean {np.mean(f):.1f} (truth 2000, error {np.mean(fe):.1f} per star), pull rms {np.std(z):.2f}")
    assert abs(np.mean(z)) < 4 / np.sqrt(len(z))
    assert 0.8 < np.std(z) < 1.2


def test_pedestal_absorbs_the_smooth_light_of_faint_neighbours():
    """Faint galaxies 1.5-3 FWHM away: a 2-FWHM aperture takes their light in, the PSF fit mostly does not."""
    rng = np.random.default_rng(12)
    flux = 5000.0
    data, var, x, y, d = _scene(8, flux, lambda x, y: 1.0, rng, sky_sigma=1.0, neighbours=3)
    grid = DilationGrid.from_profile(KOLMOGOROV, SCALE, half_width_px=9)
    seg, sid = np.zeros(data.shape, int), np.zeros(len(x), int)
    f, _, ok = forced_fluxes(data, var, np.zeros(data.shape, bool), seg, sid, x, y, grid, d, radius_px=6.0)
    yy, xx = np.mgrid[: data.shape[0], : data.shape[1]]
    ee = PixelPSF.from_profile(KOLMOGOROV, SCALE, half_width_px=12).stamp(xx[:25, :25] - 12.0, yy[:25, :25] - 12.0)
    inside = (xx[:25, :25] - 12.0) ** 2 + (yy[:25, :25] - 12.0) ** 2 <= 8.0**2
    ap = np.array([data[(xx - xi) ** 2 + (yy - yi) ** 2 <= 8.0**2].sum() for xi, yi in zip(x, y, strict=True)])
    ap /= ee[inside].sum()  # aperture fluxes corrected to total with the known PSF
    bias_psf = 1000 * abs(np.median(-2.5 * np.log10(f[ok] / flux)))
    bias_ap = 1000 * abs(np.median(-2.5 * np.log10(ap / flux)))
    print(f"median bias: PSF fit {bias_psf:.1f} mmag, 2-FWHM aperture {bias_ap:.1f} mmag")
    assert bias_ap > 10.0  # the aperture is contaminated
    assert bias_psf < bias_ap / 3


def test_dilation_field_is_recovered():
    """A PSF dilated by 1 + 0.03 u - 0.02 v + 0.01 u v across the image: recovered to < 0.2 % rms."""
    rng = np.random.default_rng(13)
    size = 10 * 24

    def truth(x, y):
        u, v = 2 * x / (size - 1) - 1, 2 * y / (size - 1) - 1
        return 1.0 + 0.03 * u - 0.02 * v + 0.01 * u * v

    data, var, x, y, d = _scene(10, 2e4, truth, rng)
    grid = DilationGrid.from_profile(KOLMOGOROV, SCALE, half_width_px=9)
    seg, sid, bad = np.zeros(data.shape, int), np.zeros(len(x), int), np.zeros(data.shape, bool)
    dil, err = fit_dilations(data, var, bad, seg, sid, x, y, grid, radius_px=6.0)
    assert np.isfinite(dil).sum() > 95
    pull = (dil - d) / err
    assert 0.7 < np.nanstd(pull) < 1.4  # the per-star errors (sky noise only) describe the scatter
    field = fit_dilation_field(x, y, dil, err, data.shape)
    assert len(field.powers) == 6 and field.n_stars > 90
    rms = float(np.sqrt(np.mean((field(x, y) - d) ** 2)))
    print(f"dilation field: rms error {rms:.5f}, per-star scatter {np.nanstd(dil - d):.4f}")
    assert rms < 0.002


def test_dilation_field_needs_stars():
    with pytest.raises(ValueError, match="no star"):
        fit_dilation_field(np.zeros(3), np.zeros(3), np.full(3, np.nan), np.full(3, np.nan), (10, 10))
