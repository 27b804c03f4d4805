"""Injected sources land where asked, with the asked flux, through the image's own PSF."""

from __future__ import annotations

import numpy as np
import pytest
import sep
from sim_helpers import aperture_fraction

from jspdb.errors import SimulationError
from jspdb.sim.inject import INJECTED_BIT, inject_sources

IMAGES = ["lsst_r_e00", "euclid_vis_e00", "euclid_j_e00", "roman_f158_e00"]


def _grid(image, n=4):
    ny, nx = image.shape
    x = np.linspace(0.25 * nx, 0.75 * nx, n) + 0.37
    y = np.linspace(0.3 * ny, 0.7 * ny, n)[::-1] - 0.21
    ra, dec = image.wcs_true.all_pix2world(x, y, 1)
    return x, y, ra, dec


def _centroid(diff, x, y, half):
    ix, iy = int(round(x)) - 1, int(round(y)) - 1
    stamp = diff[iy - half: iy + half + 1, ix - half: ix + half + 1]
    yy, xx = np.mgrid[-half: half + 1, -half: half + 1]
    w = stamp.sum()
    return ix + 1 + (stamp * xx).sum() / w, iy + 1 + (stamp * yy).sum() / w


@pytest.mark.parametrize("image_id", IMAGES)
def test_point_sources_land_where_asked_with_asked_flux(field, image_id):
    image = field.image(image_id)
    x, y, ra, dec = _grid(image)
    flux = np.array([2e4, 5e4, 1e5, 3e5])  # nJy
    out, truth = inject_sources(image, {"ra": ra, "dec": dec, "flux": flux}, seed=3, add_noise=False)
    assert np.allclose(truth.column("x").to_numpy(), x, atol=1e-6)
    assert np.allclose(truth.column("y").to_numpy(), y, atol=1e-6)
    assert truth.column("on_image").to_numpy(zero_copy_only=False).all()
    diff = out.science.astype(np.float64) - image.science
    scale = image.band_info.pixel_scale
    r_pix = (3.0 * image.systematics["psf_fwhm_arcsec"] if image.psf.ground else 1.0) / scale
    half = int(np.ceil(r_pix))
    for k in range(x.size):
        cx, cy = _centroid(diff, x[k], y[k], half)
        # symmetric PSF, noiseless: first moments sit on the asked position
        assert cx == pytest.approx(x[k], abs=0.05) and cy == pytest.approx(y[k], abs=0.05)
        measured, _, _ = sep.sum_circle(np.ascontiguousarray(diff), [x[k] - 1], [y[k] - 1], r_pix, subpix=10)
        frac = aperture_fraction(image, x[k], y[k], float("nan"), r_pix)
        assert image.units_to_njy(measured[0] / frac) == pytest.approx(flux[k], rel=0.005)
    assert np.any(out.mask & (1 << INJECTED_BIT))
    # the input image is untouched
    assert not np.any(image.mask & (1 << INJECTED_BIT))


@pytest.mark.parametrize("image_id", ["lsst_i_e00", "roman_f106_e00"])
def test_extended_sources_and_noise(field, image_id):
    image = field.image(image_id)
    x, y, ra, dec = _grid(image, n=3)
    flux = np.array([1e5, 2e5, 4e5])
    src = {
        "ra": ra, "dec": dec, "flux": flux,
        "bulge_fraction": [0.0, 0.3, 0.8], "bulge_n": [4.0, 4.0, 3.0],
        "bulge_hlr": [0.2, 0.25, 0.3], "bulge_e": [0.0, 0.1, 0.2],
        "disk_hlr": [0.4, 0.5, 0.6], "disk_e": [0.3, 0.5, 0.2], "pa": [10.0, 80.0, 140.0],
    }
    clean, truth = inject_sources(image, src, seed=4, add_noise=False)
    assert truth.column("kind").to_pylist() == ["extended"] * 3
    diff = clean.science.astype(np.float64) - image.science
    r_pix = 5.0 / image.band_info.pixel_scale
    measured, _, _ = sep.sum_circle(np.ascontiguousarray(diff), x - 1, y - 1, r_pix, subpix=5)
    assert np.allclose(image.units_to_njy(measured), flux, rtol=0.02)
    half = int(np.ceil(2.0 / image.band_info.pixel_scale))
    for k in range(3):
        cx, cy = _centroid(diff, x[k], y[k], half)
        assert cx == pytest.approx(x[k], abs=0.1) and cy == pytest.approx(y[k], abs=0.1)

    noisy, _ = inject_sources(image, src, seed=4, add_noise=True)
    nd = np.ascontiguousarray(noisy.science.astype(np.float64) - image.science)
    var = np.ascontiguousarray(noisy.variance.astype(np.float64))
    m2, e2, _ = sep.sum_circle(nd, x - 1, y - 1, r_pix, var=var, subpix=5)
    assert np.all(np.abs(m2 - image.njy_to_units(flux)) < 5 * e2 + 0.02 * image.njy_to_units(flux))
    assert np.all(noisy.variance >= image.variance)
    # the added noise is the sources' own: the residual off the sources is zero
    assert np.allclose((nd - diff)[:5, :5], 0.0)


def test_injection_rejects_bad_input(field):
    image = field.image("lsst_r_e00")
    with pytest.raises(SimulationError, match="ra"):
        inject_sources(image, {"dec": [1.0], "flux": [1.0]}, seed=1)
    with pytest.raises(SimulationError, match="non-negative"):
        inject_sources(image, {"ra": [150.1], "dec": [2.2], "flux": [-1.0]}, seed=1)
    with pytest.raises(SimulationError, match="extended"):
        inject_sources(image, {"ra": [150.1], "dec": [2.2], "flux": [1.0], "bulge_fraction": [0.5]}, seed=1)
